"""Which kind of appspec a text is (Server, Lambda or ECS), and parsing it as that kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from engine.appspec.diagnostics import AppSpecResult
from engine.appspec.document import Node, load_document
from engine.appspec.report import Reporter
from engine.appspec.server import ServerAppSpec, parse_server_appspec

if TYPE_CHECKING:  # imported where such a text is parsed: most revisions are Server ones
    from engine.appspec.ecs_appspec import EcsAppSpec
    from engine.appspec.lambda_appspec import LambdaAppSpec

AppSpecKind = Literal["server", "lambda", "ecs"]
AnyAppSpec: TypeAlias = "ServerAppSpec | LambdaAppSpec | EcsAppSpec"


def detect_kind(text: str) -> AppSpecKind:
    """`server` when the document has a key only Server appspecs have (`os`, `files`, `hooks`
    as a mapping), whatever else it holds: the agent ignores unknown top-level keys such as
    `resources`. Otherwise `lambda` or `ecs` when it has `Resources` (any case) whose resource
    Type, or failing that whose Properties, say so; `server` otherwise, including for
    unreadable text (so that the Server parser reports what is wrong)."""
    root = load_document(text, Reporter("<detect>")).root
    if root is None or not root.is_mapping:
        return "server"
    hooks = _ci(root, "hooks")
    if any(_ci(root, key) is not None for key in ("os", "files")) or (
        hooks is not None and hooks.is_mapping
    ):
        return "server"
    resources = _ci(root, "resources")
    if resources is None:
        return "server"
    bodies = [
        value
        for item in (resources.items if resources.is_sequence else (resources,))
        if item.is_mapping
        for _key, value in item.pairs
        if value.is_mapping
    ]
    for body in bodies:
        kind = _ci(body, "type")
        if kind is not None and kind.is_str:
            lowered = str(kind.value).lower()
            if "lambda" in lowered:
                return "lambda"
            if "ecs" in lowered:
                return "ecs"
    for body in bodies:
        props = _ci(body, "properties")
        if props is not None and props.is_mapping:
            if _ci(props, "taskdefinition") or _ci(props, "loadbalancerinfo"):
                return "ecs"
            if _ci(props, "alias") or _ci(props, "targetversion"):
                return "lambda"
    if hooks is not None and hooks.is_sequence:
        for item in hooks.items:
            for key, _value in item.pairs:
                if key.is_str and str(key.value).lower() in (
                    "beforeinstall",
                    "afterinstall",
                    "afterallowtesttraffic",
                ):
                    return "ecs"
    return "lambda"


def parse_appspec(
    text: str,
    *,
    filename: str = "appspec.yml",
    host_os: str = "linux",
    kind: AppSpecKind | None = None,
) -> AppSpecResult[AnyAppSpec]:
    """Parse `text` as `kind`, or as the kind `detect_kind` finds."""
    chosen = kind or detect_kind(text)
    if chosen == "lambda":
        from engine.appspec.lambda_appspec import parse_lambda_appspec

        return _widen(parse_lambda_appspec(text, filename=filename))
    if chosen == "ecs":
        from engine.appspec.ecs_appspec import parse_ecs_appspec

        return _widen(parse_ecs_appspec(text, filename=filename))
    return _widen(parse_server_appspec(text, filename=filename, host_os=host_os))


def _widen(result: AppSpecResult[Any]) -> AppSpecResult[AnyAppSpec]:
    return result


def _ci(node: Node, name: str) -> Node | None:
    for key, value in node.pairs:
        if key.is_str and str(key.value).lower() == name:
            return value
    return None
