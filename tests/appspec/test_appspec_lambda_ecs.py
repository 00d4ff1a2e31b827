"""Lambda and ECS appspecs (docs/codedeploy-service.md#lambda-and-ecs-appspecs), in YAML and
JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.appspec import (
    AwsVpcConfiguration,
    CapacityProviderItem,
    EcsAppSpec,
    EcsServiceTarget,
    FunctionHook,
    LambdaAppSpec,
    LambdaFunctionTarget,
    load_ecs_appspec,
    load_lambda_appspec,
    parse_ecs_appspec,
    parse_lambda_appspec,
)

LAMBDA: dict[str, Any] = {
    "version": 0.0,
    "Resources": [
        {
            "myLambdaFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Name": "myLambdaFunction",
                    "Alias": "live",
                    "CurrentVersion": "1",
                    "TargetVersion": "2",
                },
            }
        }
    ],
    "Hooks": [
        {"BeforeAllowTraffic": "CodeDeployHook_pre"},
        {"AfterAllowTraffic": "CodeDeployHook_post"},
    ],
}

ECS: dict[str, Any] = {
    "version": 0.0,
    "Resources": [
        {
            "TargetService": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "TaskDefinition": "arn:aws:ecs:r:1:task-definition/web:3",
                    "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 80},
                    "PlatformVersion": "1.4.0",
                    "NetworkConfiguration": {
                        "AwsvpcConfiguration": {
                            "Subnets": ["subnet-1", "subnet-2"],
                            "SecurityGroups": ["sg-1"],
                            "AssignPublicIp": "ENABLED",
                        }
                    },
                    "CapacityProviderStrategy": [
                        {"Base": 1, "CapacityProvider": "FARGATE_SPOT", "Weight": 2},
                        {"CapacityProvider": "FARGATE", "Weight": 1},
                    ],
                },
            }
        }
    ],
    "Hooks": [
        {"BeforeInstall": "fnA"},
        {"AfterInstall": "fnB"},
        {"AfterAllowTestTraffic": "fnC"},
        {"BeforeAllowTraffic": "fnD"},
        {"AfterAllowTraffic": "fnE"},
    ],
}


def as_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def as_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


FORMS = [pytest.param(as_yaml, id="yaml"), pytest.param(as_json, id="json")]


def lambda_props(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["Resources"][0]["myLambdaFunction"]["Properties"]


def ecs_props(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["Resources"][0]["TargetService"]["Properties"]


# --- Lambda -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", FORMS)
def test_lambda_example_is_accepted(dump: Any) -> None:
    result = parse_lambda_appspec(dump(LAMBDA))
    assert result.ok and not result.diagnostics
    assert result.appspec == LambdaAppSpec(
        0.0,
        LambdaFunctionTarget("myLambdaFunction", "myLambdaFunction", "live", 1, 2),
        (
            FunctionHook("BeforeAllowTraffic", "CodeDeployHook_pre"),
            FunctionHook("AfterAllowTraffic", "CodeDeployHook_post"),
        ),
    )
    assert result.appspec.hook_function("AfterAllowTraffic") == "CodeDeployHook_post"
    assert result.appspec.hook_function("BeforeInstall") is None


def test_lambda_keys_are_case_insensitive() -> None:
    text = """\
version: 0.0
resources:
  - fn:
      type: AWS::Lambda::Function
      properties:
        name: fn
        alias: live
        currentversion: 3
        targetversion: "4"
hooks:
  - beforeallowtraffic: pre
"""
    spec = parse_lambda_appspec(text).unwrap()
    assert spec.resource == LambdaFunctionTarget("fn", "fn", "live", 3, 4)
    assert spec.hooks == (FunctionHook("BeforeAllowTraffic", "pre"),)


def test_lambda_without_hooks_is_accepted() -> None:
    doc = copy.deepcopy(LAMBDA)
    del doc["Hooks"]
    assert parse_lambda_appspec(as_yaml(doc)).ok


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("missing", ["Name", "Alias", "CurrentVersion", "TargetVersion"])
def test_lambda_required_properties(dump: Any, missing: str) -> None:
    doc = copy.deepcopy(LAMBDA)
    del lambda_props(doc)[missing]
    result = parse_lambda_appspec(dump(doc))
    (error,) = result.errors
    assert error.key == f"Resources[0].myLambdaFunction.Properties.{missing}"
    assert missing in error.hint


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("bad", ["0", 0, -1, "1.5", 1.5, "abc", "$LATEST", True, "", ["1"]])
def test_lambda_versions_must_be_positive_integers(dump: Any, bad: object) -> None:
    doc = copy.deepcopy(LAMBDA)
    lambda_props(doc)["TargetVersion"] = bad
    result = parse_lambda_appspec(dump(doc))
    (error,) = result.errors
    assert error.key.endswith("Properties.TargetVersion")
    assert "TargetVersion" in error.message


def test_lambda_same_versions_warn() -> None:
    doc = copy.deepcopy(LAMBDA)
    lambda_props(doc)["TargetVersion"] = 1
    result = parse_lambda_appspec(as_yaml(doc))
    assert result.ok and "no traffic will move" in result.warnings[0].message


@pytest.mark.parametrize("dump", FORMS)
def test_lambda_wrong_type_is_rejected(dump: Any) -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["Resources"][0]["myLambdaFunction"]["Type"] = "AWS::ECS::Service"
    (error,) = parse_lambda_appspec(dump(doc)).errors
    assert error.key == "Resources[0].myLambdaFunction.Type"
    assert "ECS appspec" in error.message


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("event", ["BeforeInstall", "AllowTraffic", "ApplicationStart"])
def test_lambda_hook_events_are_limited(dump: Any, event: str) -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["Hooks"].append({event: "fn"})
    (error,) = parse_lambda_appspec(dump(doc)).errors
    assert error.key == f"Hooks[2].{event}"
    assert error.value == event


@pytest.mark.parametrize(
    "hooks",
    [
        {"BeforeAllowTraffic": "fn"},  # server-style mapping
        [{"BeforeAllowTraffic": "a", "AfterAllowTraffic": "b"}],  # two keys in one item
        ["BeforeAllowTraffic"],
        [{"BeforeAllowTraffic": ""}],
        [{"BeforeAllowTraffic": ["fn"]}],
        [{"BeforeAllowTraffic": "a"}, {"BeforeAllowTraffic": "b"}],
    ],
)
def test_lambda_hooks_shape(hooks: object) -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["Hooks"] = hooks
    assert len(parse_lambda_appspec(as_yaml(doc)).errors) == 1


@pytest.mark.parametrize("version", ["0.0", 1, None, False])
def test_lambda_version_must_be_zero(version: object) -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["version"] = version
    (error,) = parse_lambda_appspec(as_json(doc), filename="appspec.json").errors
    assert error.key == "version"


def test_lambda_missing_version() -> None:
    doc = copy.deepcopy(LAMBDA)
    del doc["version"]
    (error,) = parse_lambda_appspec(as_yaml(doc)).errors
    assert error.key == "version" and error.value is None


# --- Resources (shared) ---------------------------------------------------------------------


def test_more_than_one_resource_is_rejected_clearly() -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["Resources"].append(copy.deepcopy(doc["Resources"][0]))
    (error,) = parse_lambda_appspec(as_yaml(doc)).errors
    assert error.key == "Resources[1]"
    assert "exactly one function" in error.message and "2 resources" in error.message


@pytest.mark.parametrize(
    "resources",
    [
        None,
        [],
        {"fn": {"Type": "AWS::Lambda::Function"}},
        [{"Type": "AWS::Lambda::Function", "Properties": {}}],
        ["fn"],
        [{"fn": "AWS::Lambda::Function"}],
    ],
)
def test_resources_shape(resources: object) -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["Resources"] = resources
    errors = parse_lambda_appspec(as_yaml(doc)).errors
    assert len(errors) == 1 and errors[0].key.startswith("Resources")


def test_keys_differing_only_in_case_are_an_error() -> None:
    doc = copy.deepcopy(LAMBDA)
    lambda_props(doc)["name"] = "other"
    (error,) = parse_lambda_appspec(as_yaml(doc)).errors
    assert "given twice" in error.message


def test_unknown_keys_warn() -> None:
    doc = copy.deepcopy(LAMBDA)
    doc["os"] = "linux"
    lambda_props(doc)["Aliass"] = "x"
    result = parse_lambda_appspec(as_yaml(doc))
    assert result.ok
    assert {w.key for w in result.warnings} == {
        "os",
        "Resources[0].myLambdaFunction.Properties.Aliass",
    }


def test_lambda_error_positions(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yaml"
    path.write_text(
        "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n"
        "      Properties:\n        Name: fn\n        Alias: live\n"
        "        CurrentVersion: 1\n        TargetVersion: zero\n",
        encoding="utf-8",
    )
    (error,) = load_lambda_appspec(path).errors
    assert (error.file, error.line, error.column, error.value) == (str(path), 9, 24, "zero")


# --- ECS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", FORMS)
def test_ecs_example_is_accepted(dump: Any) -> None:
    result = parse_ecs_appspec(dump(ECS))
    assert result.ok and not result.diagnostics
    assert result.appspec == EcsAppSpec(
        0.0,
        EcsServiceTarget(
            "TargetService",
            "arn:aws:ecs:r:1:task-definition/web:3",
            "web",
            80,
            "1.4.0",
            AwsVpcConfiguration(("subnet-1", "subnet-2"), ("sg-1",), "ENABLED"),
            (
                CapacityProviderItem("FARGATE_SPOT", 1, 2),
                CapacityProviderItem("FARGATE", 0, 1),
            ),
        ),
        tuple(FunctionHook(*next(iter(h.items()))) for h in ECS["Hooks"]),
    )


def test_ecs_minimal_defaults() -> None:
    doc = copy.deepcopy(ECS)
    props = ecs_props(doc)
    for key in ("PlatformVersion", "NetworkConfiguration", "CapacityProviderStrategy"):
        del props[key]
    spec = parse_ecs_appspec(as_yaml(doc)).unwrap()
    assert spec.resource.platform_version == "LATEST"
    assert spec.resource.network_configuration is None
    assert spec.resource.capacity_provider_strategy == ()


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("TaskDefinition",), "Properties.TaskDefinition"),
        (("LoadBalancerInfo",), "Properties.LoadBalancerInfo"),
        (("LoadBalancerInfo", "ContainerName"), "LoadBalancerInfo.ContainerName"),
        (("LoadBalancerInfo", "ContainerPort"), "LoadBalancerInfo.ContainerPort"),
    ],
)
def test_ecs_required_properties(dump: Any, path: tuple[str, ...], key: str) -> None:
    doc = copy.deepcopy(ECS)
    target = ecs_props(doc)
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    (error,) = parse_ecs_appspec(dump(doc)).errors
    assert error.key.endswith(key)


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("port", ["80", 0, 70000, 8.5, True, None, [80]])
def test_ecs_container_port_must_be_an_integer(dump: Any, port: object) -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["LoadBalancerInfo"]["ContainerPort"] = port
    (error,) = parse_ecs_appspec(dump(doc)).errors
    assert error.key.endswith("ContainerPort")
    if port == "80":
        assert "not a string" in error.message and "without quotes" in error.hint


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("drop", ["Subnets", "SecurityGroups", "AssignPublicIp"])
def test_ecs_awsvpc_needs_all_three(dump: Any, drop: str) -> None:
    doc = copy.deepcopy(ECS)
    del ecs_props(doc)["NetworkConfiguration"]["AwsvpcConfiguration"][drop]
    (error,) = parse_ecs_appspec(dump(doc)).errors
    assert error.key.endswith("AwsvpcConfiguration")
    assert drop in error.message and "all three" in error.message


def test_ecs_awsvpc_with_none_of_the_three_keeps_the_network() -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["NetworkConfiguration"]["AwsvpcConfiguration"] = {}
    spec = parse_ecs_appspec(as_yaml(doc)).unwrap()
    assert spec.resource.network_configuration is None


@pytest.mark.parametrize("value", ["enabled", "YES", True, "ON"])
def test_ecs_assign_public_ip_values(value: object) -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] = value
    (error,) = parse_ecs_appspec(as_yaml(doc)).errors
    assert error.key.endswith("AssignPublicIp") and "ENABLED" in error.hint


@pytest.mark.parametrize(
    "network",
    [
        {"AwsvpcConfiguration": {"Subnets": "subnet-1", "SecurityGroups": ["sg"],
                                 "AssignPublicIp": "DISABLED"}},
        {"AwsvpcConfiguration": {"Subnets": [], "SecurityGroups": ["sg"],
                                 "AssignPublicIp": "DISABLED"}},
        {"AwsvpcConfiguration": "x"},
        {"Other": 1},
        "x",
    ],
)  # fmt: skip
def test_ecs_network_shape(network: object) -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["NetworkConfiguration"] = network
    assert len(parse_ecs_appspec(as_yaml(doc)).errors) == 1


def test_ecs_only_one_provider_may_have_base() -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["CapacityProviderStrategy"][1]["Base"] = 0
    (error,) = parse_ecs_appspec(as_yaml(doc)).errors
    assert error.key.endswith("CapacityProviderStrategy[1].Base")


def test_ecs_at_least_one_weight_above_zero() -> None:
    doc = copy.deepcopy(ECS)
    strategy = ecs_props(doc)["CapacityProviderStrategy"]
    strategy[0]["Weight"] = 0
    del strategy[1]["Weight"]  # default 0
    (error,) = parse_ecs_appspec(as_yaml(doc)).errors
    assert "weight" in error.message


@pytest.mark.parametrize(
    "entry",
    [
        {"Weight": 1},
        {"CapacityProvider": "F", "Weight": "1"},
        {"CapacityProvider": "F", "Weight": -1},
    ],
)
def test_ecs_capacity_provider_entries(entry: dict[str, object]) -> None:
    doc = copy.deepcopy(ECS)
    ecs_props(doc)["CapacityProviderStrategy"].append(entry)
    assert len(parse_ecs_appspec(as_yaml(doc)).errors) == 1


@pytest.mark.parametrize("dump", FORMS)
@pytest.mark.parametrize("event", ["ApplicationStart", "AllowTestTraffic", "Install"])
def test_ecs_hook_events_are_limited(dump: Any, event: str) -> None:
    doc = copy.deepcopy(ECS)
    doc["Hooks"].append({event: "fn"})
    (error,) = parse_ecs_appspec(dump(doc)).errors
    assert error.key == f"Hooks[5].{event}"


def test_ecs_parser_rejects_a_lambda_appspec() -> None:
    (error,) = parse_ecs_appspec(as_yaml(LAMBDA)).errors
    assert "Lambda appspec" in error.message


def test_load_ecs_appspec_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "appspec.json"
    path.write_text(as_json(ECS), encoding="utf-8")
    assert load_ecs_appspec(path).ok
    path.write_text(as_json(ECS)[:-3], encoding="utf-8")
    (error,) = load_ecs_appspec(path).errors
    assert error.message.startswith("JSON syntax error")


def test_empty_and_non_mapping_documents() -> None:
    assert "empty" in parse_ecs_appspec("").errors[0].message
    assert "mapping" in parse_lambda_appspec("[1, 2]").errors[0].message
