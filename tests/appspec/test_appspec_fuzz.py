"""Property: whatever the input, every parser returns an AppSpecResult and never raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.appspec import (
    AppSpecResult,
    ServerAppSpec,
    detect_kind,
    parse_ecs_appspec,
    parse_lambda_appspec,
    parse_server_appspec,
)
from tests.fuzz import FAST, dump, keys_like, maybe_damaged, mutate, values_with

Parser = Callable[[str], AppSpecResult[Any]]

PARSERS: tuple[Parser, ...] = (
    lambda text: parse_server_appspec(text),
    lambda text: parse_server_appspec(text, filename="appspec.json", host_os="windows"),
    lambda text: parse_lambda_appspec(text),
    lambda text: parse_ecs_appspec(text, filename="appspec.json"),
)

SERVER: dict[str, Any] = {
    "version": 0.0,
    "os": "linux",
    "file_exists_behavior": "OVERWRITE",
    "files": [{"source": "web", "destination": "/srv/web"}],
    "permissions": [
        {
            "object": "/srv/web",
            "pattern": "*.html",
            "except": ["tmp*"],
            "type": ["file"],
            "owner": "www-data",
            "group": "www",
            "mode": "0644",
            "acls": ["user:bob:rw-", "d:g:ops:5"],
            "context": {"name": "system_u", "type": "httpd_t", "range": "s0-s1:c0.c3,c7"},
        }
    ],
    "hooks": {
        "BeforeInstall": [{"location": "a.sh", "timeout": 30, "runas": "root", "sudo": True}],
        "ApplicationStart": [{"location": "b.sh"}],
        "ValidateService": [],
    },
}

LAMBDA: dict[str, Any] = {
    "version": 0.0,
    "Resources": [
        {
            "fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Name": "fn",
                    "Alias": "live",
                    "CurrentVersion": "1",
                    "TargetVersion": "2",
                },
            }
        }
    ],
    "Hooks": [{"BeforeAllowTraffic": "pre"}, {"AfterAllowTraffic": "post"}],
}

ECS: dict[str, Any] = {
    "version": 0.0,
    "Resources": [
        {
            "svc": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "TaskDefinition": "td",
                    "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 80},
                    "NetworkConfiguration": {
                        "AwsvpcConfiguration": {
                            "Subnets": ["s-1"],
                            "SecurityGroups": ["sg-1"],
                            "AssignPublicIp": "DISABLED",
                        }
                    },
                    "CapacityProviderStrategy": [
                        {"Base": 1, "CapacityProvider": "FARGATE", "Weight": 1}
                    ],
                },
            }
        }
    ],
    "Hooks": [{"BeforeInstall": "a"}, {"AfterAllowTestTraffic": "b"}],
}

KEYS = keys_like(
    ["version", "os", "hooks", "files", "permissions", "Resources", "Hooks", "Type", "mode"]
)
VALUES = values_with(KEYS)


def check(result: AppSpecResult[Any]) -> None:
    assert isinstance(result, AppSpecResult)
    for diagnostic in result.diagnostics:
        assert diagnostic.severity in ("error", "warning")
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert diagnostic.hint, str(diagnostic)  # every finding says what to write instead
        assert str(diagnostic)
    if result.ok:
        assert result.appspec is not None and not result.errors
        if isinstance(result.appspec, ServerAppSpec):
            json.dumps(result.appspec.to_agent_dict())
    else:
        assert result.appspec is None and result.errors


def run_all(text: str) -> None:
    for parser in PARSERS:
        check(parser(text))
    assert detect_kind(text) in ("server", "lambda", "ecs")


@FAST
@given(VALUES)
def test_random_yaml_documents_never_raise(doc: object) -> None:
    run_all(dump(doc))


@FAST
@given(st.text(max_size=200))
def test_random_text_never_raises(text: str) -> None:
    run_all(text)


@FAST
@given(
    st.text(
        alphabet=st.sampled_from(list("{}[]:,-?&*!|>'\"#%@` \t\n0123456789.abcsu~")), max_size=120
    )
)
def test_random_yaml_punctuation_never_raises(text: str) -> None:
    run_all(text)


@FAST
@given(st.sampled_from([SERVER, LAMBDA, ECS]), st.integers(1, 3), st.data())
def test_mutated_valid_appspecs_never_raise(
    base: dict[str, Any], rounds: int, data: st.DataObject
) -> None:
    doc: Any = base
    for _ in range(rounds):
        doc = mutate(doc, data, KEYS, VALUES)
    run_all(maybe_damaged(dump(doc), data))


def test_the_unmutated_bases_are_valid() -> None:
    assert parse_server_appspec(dump(SERVER)).ok
    assert parse_lambda_appspec(dump(LAMBDA)).ok
    assert parse_ecs_appspec(json.dumps(ECS), filename="appspec.json").ok
