"""Reading a deployment group's `triggers` (docs/codedeploy-service.md#triggers): a name, events and
exactly one target (webhook, command or file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.workspace.model import Trigger
from engine.workspace.paths import workspace_path
from engine.workspace.reader import Reader

TRIGGER_KEYS = ("name", "events", "webhook", "command", "file")
TRIGGER_TARGETS = ("webhook", "command", "file")
DEPLOYMENT_EVENTS = (
    "DeploymentStart",
    "DeploymentSuccess",
    "DeploymentFailure",
    "DeploymentStop",
    "DeploymentRollback",
    "DeploymentReady",
)
INSTANCE_EVENTS = ("InstanceStart", "InstanceSuccess", "InstanceFailure", "InstanceReady")
TRIGGER_EVENTS = DEPLOYMENT_EVENTS + INSTANCE_EVENTS
MAX_TRIGGERS = 10
TRIGGER_NAME_MAX = 100


class TriggerChecker:
    def __init__(self, reader: Reader, folder: Path) -> None:
        self.read = reader
        self.folder = folder

    def triggers(self, node: Node, path: str) -> tuple[Trigger, ...] | None:
        items = self.read.sequence(
            node,
            path,
            "triggers",
            "write triggers: then - {name: ops, events: [...], webhook: URL}",
        )
        if items is None:
            return None
        ok = True
        result: list[Trigger] = []
        first_seen: dict[str, Node] = {}
        for i, item in enumerate(items):
            at = key_path(path, i)
            if i == MAX_TRIGGERS:
                self.read.error(
                    item,
                    at,
                    f"a deployment group has at most {MAX_TRIGGERS} triggers (this one has "
                    f"{len(items)})",
                    "merge triggers: one trigger can take several events",
                )
                ok = False
            trigger = self.trigger(item, at)
            if trigger is None:
                ok = False
                continue
            name_node = item.get("name")
            assert name_node is not None
            if trigger.name in first_seen:
                self.read.error(
                    name_node,
                    key_path(at, "name"),
                    f"the trigger name {trigger.name!r} is already used in this group (line "
                    f"{first_seen[trigger.name].line})",
                    "give each trigger its own name",
                )
                ok = False
                continue
            first_seen[trigger.name] = name_node
            result.append(trigger)
        return tuple(result) if ok else None

    def trigger(self, node: Node, path: str) -> Trigger | None:
        example = "- {name: ops, events: [DeploymentFailure], webhook: http://127.0.0.1:9000/hook}"
        if self.read.mapping(node, path, "a trigger", f"write {example}", null_ok=False) is None:
            return None
        self.read.unknown_keys(node, path, TRIGGER_KEYS, "a trigger")
        ok = True
        name_node = node.get("name")
        name = None
        if name_node is None:
            self.read.missing(
                node, key_path(path, "name"), "the trigger has no name", f"write {example}"
            )
            ok = False
        else:
            name = self.read.short_string(
                name_node, key_path(path, "name"), "name", "ops", TRIGGER_NAME_MAX, "a trigger name"
            )
            ok = ok and name is not None
        events_node = node.get("events")
        events: tuple[str, ...] | None = None
        if events_node is None or events_node.is_null:
            self.read.missing(
                events_node or node,
                key_path(path, "events"),
                "the trigger has no events",
                "add events: [DeploymentFailure] (any of " + ", ".join(TRIGGER_EVENTS) + ")",
            )
            ok = False
        else:
            events = self.read.choice_list(
                events_node, key_path(path, "events"), "events", TRIGGER_EVENTS, f"write {example}"
            )
            if events == ():
                self.read.error(
                    events_node,
                    key_path(path, "events"),
                    "the trigger has an empty event list, so it would never fire",
                    "add events: [DeploymentFailure] (or remove the trigger)",
                )
                events = None
            ok = ok and events is not None
        given = [(k, node.get_pair(k)) for k in TRIGGER_TARGETS]
        targets = [(k, pair) for k, pair in given if pair is not None and not pair[1].is_null]
        targets.sort(key=lambda target: (target[1][0].line, target[1][0].column))  # file order
        if not targets:
            self.read.missing(
                node,
                path,
                f"the trigger {name or ''} has no target".replace("  ", " "),
                "add one of webhook: http://host/path, command: [./notify.sh] or "
                "file: logs/deployments.jsonl",
            )
            return None
        if len(targets) > 1:
            (first, _), (second, (second_key, _)) = targets[0], targets[1]
            self.read.error(
                second_key,
                key_path(path, second),
                f"a trigger has exactly one target, and this one has {first} and {second}",
                "split it into two triggers with the same events",
            )
            return None
        kind, (_, target_node) = targets[0]
        target = self.trigger_target(kind, target_node, key_path(path, kind))
        if not ok or target is None or name is None or events is None:
            return None
        return Trigger(name, events, **{kind: target})

    def trigger_target(self, kind: str, node: Node, path: str) -> Any:
        if kind == "webhook":
            url = self.read.string(node, path, "webhook", "http://127.0.0.1:9000/hook")
            if url is None:
                return None
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.read.error(
                    node,
                    path,
                    f"webhook must be an http:// or https:// URL (got {url!r})",
                    "write webhook: http://127.0.0.1:9000/hook",
                )
                return None
            return url
        if kind == "file":
            text = self.read.string(node, path, "file", "logs/deployments.jsonl")
            return None if text is None else workspace_path(self.folder, text)
        if node.is_str:
            if not str(node.value).strip():
                self.read.error(node, path, "command is empty", 'write command: ["./notify.sh"]')
                return None
            return str(node.value)
        items = self.read.sequence(
            node, path, "command", 'write command: ["./notify.sh", "--urgent"] (or one string)'
        )
        if items is None:
            return None
        if not items:
            self.read.error(
                node, path, "command is an empty list", 'write command: ["./notify.sh"]'
            )
            return None
        argv = [
            self.read.string(
                item, key_path(path, i), f"command[{i}]", '"..."', what="each argument"
            )
            for i, item in enumerate(items)
        ]
        return None if None in argv else tuple(argv)
