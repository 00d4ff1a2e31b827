"""Property: whatever the input, every parser returns an AppSpecResult and never raises."""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.appspec import (
    AppSpecResult,
    ServerAppSpec,
    detect_kind,
    parse_ecs_appspec,
    parse_lambda_appspec,
    parse_server_appspec,
)

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

ODD_SCALARS = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        420,
        2**70,
        0.0,
        -0.0,
        1.9,
        1e308,
        float("inf"),
        float("nan"),
        "",
        " ",
        "0.0",
        "0644",
        "false",
        "30s",
        "u::rw",
        "s0:c1023",
        "s5-s1",
        "~",
        "null",
        "*",
        "<<",
        "AWS::ECS::Service",
        datetime.date(2001, 2, 3),
        datetime.datetime(2001, 2, 3, 4, 5, 6),
        b"\x00\xff",
    ]
)
SCALARS = st.one_of(
    ODD_SCALARS,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
KEYS = st.one_of(
    st.sampled_from(
        ["version", "os", "hooks", "files", "permissions", "Resources", "Hooks", "Type", "mode"]
    ),
    st.text(max_size=10),
    st.integers(),
    st.booleans(),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=20,
)


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


def dump(doc: object) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


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


def _containers(doc: Any, out: list[Any]) -> list[Any]:
    if isinstance(doc, dict | list):
        out.append(doc)
        children = doc.values() if isinstance(doc, dict) else doc
        for child in children:
            _containers(child, out)
    return out


def mutate(doc: Any, data: st.DataObject) -> Any:
    """One structural mutation somewhere in `doc`: delete, replace, retype, insert, rename."""
    doc = copy.deepcopy(doc)
    target = data.draw(st.sampled_from(_containers(doc, [])))
    op = data.draw(st.sampled_from(["delete", "replace", "retype", "insert", "rename"]))
    if isinstance(target, dict):
        keys = list(target)
        if not keys or op == "insert":
            target[data.draw(KEYS)] = data.draw(VALUES)
            return doc
        key = data.draw(st.sampled_from(keys))
        if op == "delete":
            del target[key]
        elif op == "replace":
            target[key] = data.draw(VALUES)
        elif op == "retype":
            value = target[key]
            target[key] = data.draw(
                st.sampled_from(
                    [[value], {"k": value}, str(value), None, json.dumps(value, default=str)]
                )
            )
        else:
            renamed = data.draw(st.sampled_from([str(key).upper(), str(key)[:-1], f"{key}s"]))
            target[renamed] = target.pop(key)
    else:
        if not target or op == "insert":
            target.insert(data.draw(st.integers(0, len(target))), data.draw(VALUES))
            return doc
        index = data.draw(st.integers(0, len(target) - 1))
        if op == "delete":
            del target[index]
        elif op in ("replace", "rename"):
            target[index] = data.draw(VALUES)
        else:
            target[index] = [target[index]]
    return doc


@FAST
@given(st.sampled_from([SERVER, LAMBDA, ECS]), st.integers(1, 3), st.data())
def test_mutated_valid_appspecs_never_raise(
    base: dict[str, Any], rounds: int, data: st.DataObject
) -> None:
    doc: Any = base
    for _ in range(rounds):
        doc = mutate(doc, data)
    text = dump(doc)
    if data.draw(st.booleans()):
        # Also damage the text itself: cut a slice out or splice odd characters in.
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 8)))
        text = text[:start] + data.draw(st.text(max_size=4)) + text[end:]
    run_all(text)


def test_the_unmutated_bases_are_valid() -> None:
    assert parse_server_appspec(dump(SERVER)).ok
    assert parse_lambda_appspec(dump(LAMBDA)).ok
    assert parse_ecs_appspec(json.dumps(ECS), filename="appspec.json").ok
