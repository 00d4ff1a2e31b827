"""The Lambda appspec (docs/codedeploy-service.md#lambda-and-ecs-appspecs): one
AWS::Lambda::Function resource whose alias moves from CurrentVersion to TargetVersion, and
BeforeAllowTraffic/AfterAllowTraffic hooks.

Accepted as YAML or JSON. Keys are matched case-insensitively (the AWS reference page writes
them in lowercase, its examples in PascalCase); see `resource_appspec` for the shared rules.
Versions are positive integers, given as a string ("2", as AWS writes them) or a number (2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.appspec.diagnostics import AppSpecResult
from engine.appspec.document import Node
from engine.appspec.events import LAMBDA_HOOK_EVENTS, LAMBDA_RESERVED_EVENTS
from engine.appspec.report import Reporter, shown
from engine.appspec.resource_appspec import (
    Platform,
    ResourceAppSpec,
    ci_get,
    describe,
    load_resource_appspec,
    parse_resource_appspec,
    required_string,
    warn_unknown_keys,
    written_key,
)
from engine.appspec.ruby import MAX_DIGITS

LAMBDA_TYPE = "AWS::Lambda::Function"
LAMBDA_PROPERTY_KEYS = ("Name", "Alias", "CurrentVersion", "TargetVersion")

_PLATFORM = Platform(
    label="Lambda",
    resource_type=LAMBDA_TYPE,
    target="function",
    hook_events=LAMBDA_HOOK_EVENTS,
    reserved_events=LAMBDA_RESERVED_EVENTS,
    example_resource="Type: AWS::Lambda::Function with Name, Alias, CurrentVersion, TargetVersion",
)


@dataclass(frozen=True)
class LambdaFunctionTarget:
    """The function whose `alias` shifts from `current_version` to `target_version`."""

    logical_name: str
    name: str
    alias: str
    current_version: int
    target_version: int


@dataclass(frozen=True)
class LambdaAppSpec(ResourceAppSpec[LambdaFunctionTarget]):
    """A Lambda appspec: the function whose alias shifts, and its hook functions."""


def parse_lambda_appspec(
    text: str, *, filename: str = "appspec.yaml"
) -> AppSpecResult[LambdaAppSpec]:
    """Parse and check a Lambda appspec (YAML or JSON). Never raises on bad input."""
    return parse_resource_appspec(
        text,
        filename,
        _PLATFORM,
        lambda body, reporter: _target(body.logical_name, body.properties, body.path, reporter),
        LambdaAppSpec,
    )


def load_lambda_appspec(path: str | Path) -> AppSpecResult[LambdaAppSpec]:
    """Read and parse the Lambda appspec at `path`. OSError propagates."""
    return load_resource_appspec(path, parse_lambda_appspec)


def _target(
    logical: str, props: Node, path: str, reporter: Reporter
) -> LambdaFunctionTarget | None:
    warn_unknown_keys(props, path, LAMBDA_PROPERTY_KEYS, "a Lambda function's Properties", reporter)
    name = required_string(props, "Name", path, reporter, "my-function")
    alias = required_string(props, "Alias", path, reporter, "live")
    current, _ = _version(props, "CurrentVersion", path, reporter)
    target, target_node = _version(props, "TargetVersion", path, reporter)
    if current is not None and target is not None and target_node is not None and current == target:
        reporter.warning(
            target_node,
            written_key(props, "TargetVersion", path),
            f"TargetVersion equals CurrentVersion ({target}); no traffic will move",
            "set TargetVersion to the newly published version",
        )
    if name is None or alias is None or current is None or target is None:
        return None
    return LambdaFunctionTarget(logical, name, alias, current, target)


def _version(
    props: Node, key: str, path: str, reporter: Reporter
) -> tuple[int | None, Node | None]:
    node = ci_get(props, key, reporter, path)
    where = written_key(props, key, path)
    hint = f'write {key}: "<published version number>", e.g. {key}: "3"'
    if node is None or node.is_null:
        reporter.error(
            props if node is None or not node.text else node,
            where,
            f"{key} is required",
            hint,
            value=None,
        )
        return None, node
    value = node.value if node.is_scalar else None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (
        isinstance(value, str)
        and re.fullmatch("[0-9]+", value.strip())
        and len(value) <= MAX_DIGITS
    ):
        number = int(value.strip())
    if number is None:
        extra = (
            "; $LATEST cannot be deployed, publish a version first"
            if isinstance(value, str) and value.strip().upper() == "$LATEST"
            else ""
        )
        reporter.error(
            node,
            where,
            f"{key} must be a positive whole version number (got {describe(node)}){extra}",
            hint,
        )
        return None, node
    if number <= 0:
        reporter.error(
            node, where, f"{key} must be a positive version number (got {shown(node)!r})", hint
        )
        return None, node
    return number, node
