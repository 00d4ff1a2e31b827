"""What Lambda and ECS appspecs share (docs/codedeploy-service.md#lambda-and-ecs-appspecs):
`version`, a `Resources` list of single-key maps (logical name -> Type and Properties) and a `Hooks`
list of single-key maps (event -> hook function name).

Keys are matched case-insensitively: the AWS reference page writes them in lowercase
(`resources`, `properties`, `currentversion`) while every example uses PascalCase, and both
forms are seen in real revisions. Hook event names are keys too, so `beforeallowtraffic` is
BeforeAllowTraffic. Diagnostics quote keys as the user wrote them. Two keys that differ only in
case are an error, since it is unclear which one is meant. Values (the resource `Type`,
`ENABLED`/`DISABLED`) are compared exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from engine.appspec.diagnostics import AppSpecResult
from engine.appspec.document import Node, load_document
from engine.appspec.names import closest, did_you_mean
from engine.appspec.report import Reporter, key_path, shown
from engine.appspec.ruby import type_name
from engine.appspec.source import read_appspec_text
from engine.appspec.version import check_version

T = TypeVar("T")
R = TypeVar("R")  # what one platform's resource check gives

TOP_LEVEL_KEYS = ("version", "Resources", "Hooks")
_SERVER_KEYS = frozenset({"os", "files", "permissions", "file_exists_behavior"})


@dataclass(frozen=True)
class FunctionHook:
    """A Lambda/ECS lifecycle hook: the function invoked for `event`."""

    event: str
    function_name: str


@dataclass(frozen=True)
class Platform:
    """What differs between the Lambda and the ECS appspec shapes."""

    label: str
    resource_type: str
    target: str
    hook_events: tuple[str, ...]
    reserved_events: tuple[str, ...]
    example_resource: str

    @property
    def article(self) -> str:
        """`a Lambda` / `an ECS`."""
        return ("an " if self.label[0] in "AEIOU" else "a ") + self.label


@dataclass(frozen=True)
class ResourceAppSpec(Generic[R]):
    """A parsed Lambda or ECS appspec: its version, its one resource and its hooks."""

    version: float
    resource: R
    hooks: tuple[FunctionHook, ...] = ()

    def hook_function(self, event: str) -> str | None:
        """The function to invoke for `event`, or None."""
        return next((h.function_name for h in self.hooks if h.event == event), None)


@dataclass(frozen=True)
class ResourceBody:
    """The one resource an appspec deploys: its logical name and its Properties mapping."""

    logical_name: str
    properties: Node
    path: str


def describe(node: Node) -> str:
    """`a list`, `a mapping`, `null` or `the string 'x'` for messages."""
    if node.is_mapping:
        return "a mapping"
    if node.is_sequence:
        return "a list"
    if node.is_null:
        return "null"
    return f"the {type_name(node.value)} {shown(node)!r}"


def ci_pair(node: Node, name: str, reporter: Reporter, path: str) -> tuple[Node, Node] | None:
    """The (key, value) of `name` in a mapping, matched case-insensitively; the last wins."""
    matches = [(k, v) for k, v in node.pairs if k.is_str and str(k.value).lower() == name.lower()]
    for key, _value in matches[1:]:
        first = matches[0][0]
        reporter.error(
            key,
            key_path(path, str(key.value)),
            f"{name} is given twice ({first.value!r} on line {first.line} and {key.value!r} on "
            f"line {key.line}); keys are matched without regard to case",
            f"keep only one {name}",
            value=str(key.value),
        )
    return matches[-1] if matches else None


def ci_get(node: Node, name: str, reporter: Reporter, path: str) -> Node | None:
    pair = ci_pair(node, name, reporter, path)
    return pair[1] if pair else None


def written_key(node: Node, name: str, path: str) -> str:
    """The path of key `name` under `path`, spelled as the user wrote it."""
    for key, _value in node.pairs:
        if key.is_str and str(key.value).lower() == name.lower():
            return key_path(path, str(key.value))
    return key_path(path, name)


def warn_unknown_keys(
    node: Node, path: str, allowed: tuple[str, ...], where: str, reporter: Reporter
) -> None:
    lowered = {a.lower() for a in allowed}
    for key, _value in node.pairs:
        name = str(key.value) if key.is_scalar else key.render()
        if key.is_str and name.lower() in lowered:
            continue
        reporter.warning(
            key,
            key_path(path, name),
            f"unknown key {name!r} in {where}; it is ignored",
            did_you_mean(name, allowed),
            value=name,
        )


def load_root(text: str, reporter: Reporter, platform: Platform) -> Node | None:
    """The document's root mapping, or None after reporting why there is none."""
    loaded = load_document(text, reporter)
    if loaded.failed:
        return None
    root = loaded.root
    start = f"start it with version: 0.0, then Resources: and Hooks: ({platform.example_resource})"
    if root is None or (root.is_scalar and (root.value is None or root.value is False)):
        reporter.error_at(1, 1, "", "the appspec is empty", None, start)
        return None
    if not root.is_mapping:
        reporter.error(
            root,
            "",
            f"the appspec must be a mapping with version, Resources and Hooks "
            f"(got {describe(root)})",
            start,
        )
        return None
    return root


def check_top(root: Node, reporter: Reporter, platform: Platform) -> float | None:
    """Top-level keys and the version."""
    for key, _value in root.pairs:
        name = str(key.value) if key.is_scalar else key.render()
        if key.is_str and name.lower() in {k.lower() for k in TOP_LEVEL_KEYS}:
            continue
        if name in _SERVER_KEYS:
            hint = (
                f"{platform.article} appspec has only version, Resources and Hooks; "
                f"{name} belongs to a Server appspec"
            )
        else:
            hint = did_you_mean(name, TOP_LEVEL_KEYS)
        reporter.warning(
            key,
            key_path("", name),
            f"unknown key {name!r} in the appspec; it is ignored",
            hint,
            value=name,
        )
    pair = ci_pair(root, "version", reporter, "")
    return check_version(root, pair, reporter, pair[0].value if pair else "version")


def the_resource(root: Node, reporter: Reporter, platform: Platform) -> ResourceBody | None:
    """The single resource, with its Type checked; None after reporting a problem."""
    pair = ci_pair(root, "Resources", reporter, "")
    example = (
        "write Resources: then - <logical name>: with Type and Properties under it "
        f"({platform.example_resource})"
    )
    if pair is None or pair[1].is_null:
        reporter.error(
            root if pair is None else pair[0],
            "Resources" if pair is None else str(pair[0].value),
            f"the appspec has no Resources; it must name the {platform.target} to deploy",
            example,
            value=None,
        )
        return None
    key, node = pair
    path = str(key.value)
    if not node.is_sequence:
        reporter.error(
            node,
            path,
            f"Resources must be a list of single-key mappings (got {describe(node)})",
            example,
        )
        return None
    if not node.items:
        reporter.error(
            node,
            path,
            f"Resources is empty; exactly one {platform.target} must be listed",
            example,
        )
        return None
    if len(node.items) > 1:
        extra = node.items[1]
        reporter.error(
            extra,
            key_path(path, 1),
            f"Resources lists {len(node.items)} resources, but {platform.article} deployment "
            f"targets exactly one {platform.target}",
            f"keep one resource per appspec, and use one deployment per {platform.target}",
            value=extra.render(),
        )
    item = node.items[0]
    item_path = key_path(path, 0)
    if not item.is_mapping or len(item.pairs) != 1:
        looks_inline = item.is_mapping and any(
            k.is_str and str(k.value).lower() in ("type", "properties") for k, _ in item.pairs
        )
        reporter.error(
            item,
            item_path,
            "a Resources item must be a mapping with exactly one key, the resource's logical "
            f"name (got {describe(item) if not item.is_mapping else f'{len(item.pairs)} keys'})",
            "put Type and Properties under a logical name: - myTarget: then, indented, Type: ..."
            if looks_inline
            else example,
        )
        return None
    name_key, body = item.pairs[0]
    logical = str(name_key.value) if name_key.is_scalar else name_key.render()
    body_path = key_path(item_path, logical)
    if not body.is_mapping:
        reporter.error(
            body,
            body_path,
            f"resource {logical!r} must be a mapping with Type and Properties "
            f"(got {describe(body)})",
            f"write Type: {platform.resource_type} and Properties: under {logical}",
        )
        return None
    warn_unknown_keys(body, body_path, ("Type", "Properties"), "a resource", reporter)
    type_node = ci_get(body, "Type", reporter, body_path)
    type_ok = False
    if type_node is None or type_node.is_null:
        reporter.error(
            body,
            key_path(body_path, "Type"),
            f"resource {logical!r} has no Type",
            f"add Type: {platform.resource_type}",
            value=None,
        )
    elif not (type_node.is_str and type_node.value == platform.resource_type):
        other = {"AWS::Lambda::Function": "a Lambda", "AWS::ECS::Service": "an ECS"}.get(
            str(type_node.value) if type_node.is_str else ""
        )
        message = f"resource Type must be {platform.resource_type} (got {shown(type_node)!r})"
        if other:
            message += f"; this looks like {other} appspec, not {platform.article} one"
        reporter.error(
            type_node,
            written_key(body, "Type", body_path),
            message,
            f"write Type: {platform.resource_type}",
        )
    else:
        type_ok = True
    props = ci_get(body, "Properties", reporter, body_path)
    props_path = written_key(body, "Properties", body_path)
    if props is None or props.is_null:
        reporter.error(
            body,
            props_path,
            f"resource {logical!r} has no Properties",
            f"add Properties: with the {platform.target}'s settings ({platform.example_resource})",
            value=None,
        )
        return None
    if not props.is_mapping:
        reporter.error(
            props,
            props_path,
            f"Properties must be a mapping (got {describe(props)})",
            f"write Properties: and indent the {platform.target}'s settings under it "
            f"({platform.example_resource})",
        )
        return None
    if not type_ok:
        return None
    return ResourceBody(logical, props, props_path)


def the_hooks(root: Node, reporter: Reporter, platform: Platform) -> tuple[FunctionHook, ...]:
    pair = ci_pair(root, "Hooks", reporter, "")
    if pair is None or pair[1].is_null:
        return ()
    key, node = pair
    path = str(key.value)
    example = f"write Hooks: then - {platform.hook_events[0]}: MyHookFunction"
    if not node.is_sequence:
        hint = example
        if node.is_mapping:
            hint = (
                "Hooks is a list: put a `- ` before each event, e.g. "
                + example.split("then ", 1)[1]
            )
        reporter.error(
            node,
            path,
            f"Hooks must be a list of single-key mappings, event: function (got {describe(node)})",
            hint,
        )
        return ()
    hooks: list[FunctionHook] = []
    seen: dict[str, Node] = {}
    for i, item in enumerate(node.items):
        item_path = key_path(path, i)
        if not item.is_mapping or len(item.pairs) != 1:
            reporter.error(
                item,
                item_path,
                "a Hooks item must be a mapping with exactly one key, the event name "
                f"(got {describe(item) if not item.is_mapping else f'{len(item.pairs)} keys'})",
                "write one event per item: - " + f"{platform.hook_events[0]}: MyHookFunction",
            )
            continue
        event_key, function = item.pairs[0]
        written = str(event_key.value) if event_key.is_scalar else event_key.render()
        event_path = key_path(item_path, written)
        event = next((e for e in platform.hook_events if e.lower() == written.lower()), None)
        if event is None:
            if written in platform.reserved_events:
                message = f"{written} is performed by the deployment itself and cannot have a hook"
            else:
                message = f"{written!r} is not {platform.article} lifecycle event"
            guess = closest(written, platform.hook_events)
            reporter.error(
                event_key,
                event_path,
                message,
                f"did you mean {guess}?"
                if guess
                else f"{platform.label} hooks: {', '.join(platform.hook_events)}",
                value=written,
            )
            continue
        if event in seen:
            reporter.error(
                event_key,
                event_path,
                f"{event} has a hook already (line {seen[event].line}); each event takes one "
                "function",
                "keep one function per event; call the others from it",
                value=written,
            )
            continue
        seen[event] = event_key
        if not function.is_str or not str(function.value).strip():
            reporter.error(
                function if not function.is_null or function.text else event_key,
                event_path,
                f"the hook for {event} must be a Lambda function name (got {describe(function)})",
                f"write - {event}: CodeDeployHook_{event}",
            )
            continue
        hooks.append(FunctionHook(event, str(function.value).strip()))
    return tuple(hooks)


def required_string(
    props: Node, name: str, path: str, reporter: Reporter, example: str
) -> str | None:
    """A required, non-empty string property."""
    node = ci_get(props, name, reporter, path)
    where = written_key(props, name, path)
    if node is None or node.is_null:
        reporter.error(
            props if node is None or not node.text else node,
            where,
            f"{name} is required",
            f"add {name}: {example}",
            value=None,
        )
        return None
    if not node.is_str:
        hint = (
            f'quote it: {name}: "{shown(node)}"' if node.is_scalar else f"write {name}: {example}"
        )
        reporter.error(node, where, f"{name} must be a string (got {describe(node)})", hint)
        return None
    if not str(node.value).strip():
        reporter.error(node, where, f"{name} is empty", f"write {name}: {example}")
        return None
    return str(node.value)


def parse_resource_appspec(
    text: str,
    filename: str,
    platform: Platform,
    check_resource: Callable[[ResourceBody, Reporter], R | None],
    build: Callable[[float, R, tuple[FunctionHook, ...]], T],
) -> AppSpecResult[T]:
    """Parse and check a `platform` appspec (YAML or JSON): the shared top level and hooks, the
    resource's Properties by `check_resource`, the appspec made by `build`. Never raises on bad
    input."""
    reporter = Reporter(filename)
    root = load_root(text, reporter, platform)
    if root is None:
        return AppSpecResult(None, reporter.diagnostics())
    version = check_top(root, reporter, platform)
    body = the_resource(root, reporter, platform)
    target = check_resource(body, reporter) if body else None
    hooks = the_hooks(root, reporter, platform)
    if reporter.has_errors or version is None or target is None:
        return AppSpecResult(None, reporter.diagnostics())
    return AppSpecResult(build(version, target, hooks), reporter.diagnostics())


def load_resource_appspec(
    path: str | Path, parse: Callable[..., AppSpecResult[T]]
) -> AppSpecResult[T]:
    """Read the appspec at `path` and parse it with `parse`. OSError propagates."""
    text, problem = read_appspec_text(path)
    if problem is not None:
        return AppSpecResult(None, (problem,))
    return parse(text, filename=str(path))
