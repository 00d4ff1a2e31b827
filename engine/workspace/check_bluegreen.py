"""A Server deployment group's `blue_green:` (docs/workspace.md#blue_green): the ready wait,
where the green fleet comes from, and what becomes of blue once traffic moved."""

from __future__ import annotations

from typing import Any

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.model import BlueInstanceAction, GreenFleetAction, ReadyAction
from engine.workspace.check_tags import TagChecker
from engine.workspace.model import BlueGreenConfig
from engine.workspace.reader import Reader
from engine.workspace.tags import matches_any

KEYS = (
    "deployment_ready_option",
    "green_fleet_provisioning_option",
    "terminate_blue_instances_on_deployment_success",
)
READY_KEYS = ("action_on_timeout", "wait_time_in_minutes")
GREEN_KEYS = ("action", "tag_filters", "first_port")
BLUE_KEYS = ("action", "termination_wait_time_in_minutes")
MAX_WAIT_MINUTES = 2880  # CodeDeploy's limit: two days
EXAMPLE = "write blue_green: {green_fleet_provisioning_option: {action: COPY_AUTO_SCALING_GROUP}}"


class BlueGreenChecker:
    def __init__(self, reader: Reader, tags: TagChecker) -> None:
        self.read = reader
        self.tags = tags

    def blue_green(self, node: Node, group_path: str) -> BlueGreenConfig | None:
        """The group's blue/green settings, or None when any had an error (all reported)."""
        path = key_path(group_path, "blue_green")
        body = self.read.mapping(node, path, "blue_green", EXAMPLE)
        if body is None:
            return None
        errors_before = self.read.r.error_count()
        self.read.unknown_keys(body, path, KEYS, "blue_green")
        values: dict[str, Any] = {}
        sections = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
        if "deployment_ready_option" in sections:
            self.ready(sections["deployment_ready_option"], path, values)
        if "green_fleet_provisioning_option" in sections:
            self.green(sections["green_fleet_provisioning_option"], path, values)
        if "terminate_blue_instances_on_deployment_success" in sections:
            self.blue(sections["terminate_blue_instances_on_deployment_success"], path, values)
        if self.read.r.error_count() != errors_before or None in values.values():
            return None
        return BlueGreenConfig(**values)

    def _section(self, node: Node, path: str, name: str, keys: tuple[str, ...], example: str):
        at = key_path(path, name)
        body = self.read.mapping(node, at, name, example)
        if body is None:
            return at, None
        self.read.unknown_keys(body, at, keys, name)
        return at, {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}

    def _minutes(self, node: Node, path: str, field: str) -> float | None:
        if node.value == 0 and not isinstance(node.value, bool):
            return 0.0
        return self.read.positive_number(node, key_path(path, field), field, "60", MAX_WAIT_MINUTES)

    def ready(self, node: Node, path: str, values: dict[str, Any]) -> None:
        example = (
            "write deployment_ready_option: {action_on_timeout: STOP_DEPLOYMENT, "
            "wait_time_in_minutes: 60}"
        )
        at, fields = self._section(node, path, "deployment_ready_option", READY_KEYS, example)
        if fields is None:
            values["ready_action"] = None
            return
        action: ReadyAction | None = ReadyAction.CONTINUE_DEPLOYMENT
        if "action_on_timeout" in fields:
            chosen = self.read.choice(
                fields["action_on_timeout"],
                key_path(at, "action_on_timeout"),
                "action_on_timeout",
                tuple(ReadyAction),
            )
            values["ready_action"] = action = ReadyAction(chosen) if chosen else None
        if "wait_time_in_minutes" in fields:
            values["ready_wait_minutes"] = minutes = self._minutes(
                fields["wait_time_in_minutes"], at, "wait_time_in_minutes"
            )
        else:
            minutes = 0.0
        if action == ReadyAction.STOP_DEPLOYMENT and minutes == 0.0:
            self.read.missing(
                fields.get("wait_time_in_minutes", node),
                key_path(at, "wait_time_in_minutes"),
                "STOP_DEPLOYMENT waits in status Ready for continue-deployment, so it needs a "
                "wait time above 0 (the deployment stops when it runs out)",
                "write wait_time_in_minutes: 60, or action_on_timeout: CONTINUE_DEPLOYMENT "
                "to move traffic as soon as green is installed",
            )

    def green(self, node: Node, path: str, values: dict[str, Any]) -> None:
        example = "write green_fleet_provisioning_option: {action: COPY_AUTO_SCALING_GROUP}"
        at, fields = self._section(
            node, path, "green_fleet_provisioning_option", GREEN_KEYS, example
        )
        if fields is None:
            values["green_fleet"] = None
            return
        action: GreenFleetAction | None = GreenFleetAction.COPY_AUTO_SCALING_GROUP
        if "action" in fields:
            chosen = self.read.choice(
                fields["action"], key_path(at, "action"), "action", tuple(GreenFleetAction)
            )
            values["green_fleet"] = action = GreenFleetAction(chosen) if chosen else None
        if "tag_filters" in fields:
            if action == GreenFleetAction.COPY_AUTO_SCALING_GROUP:
                self.read.error(
                    fields["tag_filters"],
                    key_path(at, "tag_filters"),
                    "COPY_AUTO_SCALING_GROUP makes green as copies of the group's instances: "
                    "it takes no tag_filters",
                    "remove tag_filters, or write action: DISCOVER_EXISTING",
                )
            else:
                values["green_tag_filters"] = self.tags.tag_filters(
                    fields["tag_filters"], key_path(at, "tag_filters")
                )
        elif action == GreenFleetAction.DISCOVER_EXISTING:
            self.read.missing(
                node,
                key_path(at, "tag_filters"),
                "DISCOVER_EXISTING takes green from existing instances chosen by tags",
                "write tag_filters: [{key: fleet, value: green}]",
            )
        if "first_port" in fields:
            if action == GreenFleetAction.DISCOVER_EXISTING:
                self.read.error(
                    fields["first_port"],
                    key_path(at, "first_port"),
                    "first_port numbers copied instances; DISCOVER_EXISTING copies none",
                    "remove first_port",
                )
            else:
                values["copy_first_port"] = self.read.integer(
                    fields["first_port"], key_path(at, "first_port"), "first_port", 9100, 1, 65535
                )

    def blue(self, node: Node, path: str, values: dict[str, Any]) -> None:
        name = "terminate_blue_instances_on_deployment_success"
        example = f"write {name}: {{action: TERMINATE, termination_wait_time_in_minutes: 60}}"
        at, fields = self._section(node, path, name, BLUE_KEYS, example)
        if fields is None:
            values["blue_action"] = None
            return
        if "action" in fields:
            chosen = self.read.choice(
                fields["action"], key_path(at, "action"), "action", tuple(BlueInstanceAction)
            )
            values["blue_action"] = BlueInstanceAction(chosen) if chosen else None
        if "termination_wait_time_in_minutes" in fields:
            values["termination_wait_minutes"] = self._minutes(
                fields["termination_wait_time_in_minutes"], at, "termination_wait_time_in_minutes"
            )

    def overlap(
        self,
        config: BlueGreenConfig,
        group_matches: Any,
        instance_tags: dict[str, dict[str, str]],
        anchor: Node,
        group_path: str,
    ) -> None:
        """Green instances found by tags must not also be the group's own (blue) instances."""
        if not config.green_tag_filters:
            return
        both = [
            name
            for name, tags in instance_tags.items()
            if matches_any(config.green_tag_filters, tags) and group_matches(tags)
        ]
        if both:
            self.read.error(
                anchor,
                key_path(
                    key_path(group_path, "blue_green"),
                    "green_fleet_provisioning_option.tag_filters",
                ),
                f"instance(s) {', '.join(both)} match both the group's tags (blue) and the "
                "green fleet's tag_filters; an instance cannot be in both fleets",
                "give green instances a tag the group's tag_filters do not select",
            )
