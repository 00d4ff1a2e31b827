"""The `applications:` section: applications and their deployment groups
(docs/codedeploy-service.md#rollback, docs/codedeploy-service.md#triggers,
docs/codedeploy-service.md#deployment-groups): tag filters, config, auto rollback, triggers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.alarms import AlarmConfigError, AlarmConfiguration, parse_alarm_configuration
from engine.appspec.document import Node
from engine.appspec.names import closest
from engine.appspec.report import key_path
from engine.appspec.server import FILE_EXISTS_BEHAVIORS
from engine.configs import COMPUTE_PLATFORMS, PREDEFINED_CONFIGS, DeploymentConfig
from engine.model import ComputePlatform, DeploymentOption, DeploymentStyle, DeploymentType
from engine.workspace.check_balancer import BalancerChecker
from engine.workspace.check_bluegreen import BlueGreenChecker
from engine.workspace.check_configs import ConfigsSection
from engine.workspace.check_tags import FILTER_EXAMPLE, TagChecker
from engine.workspace.check_triggers import TriggerChecker
from engine.workspace.model import Application, AutoRollback, DeploymentGroup
from engine.workspace.reader import Reader

APPLICATION_KEYS = ("compute_platform", "deployment_groups")
GROUP_KEYS = (
    "deployment_config",
    "deployment_style",
    "tag_filters",
    "tag_set",
    "auto_rollback",
    "ignore_application_stop_failures",
    "file_exists_behavior",
    "triggers",
    "alarm_configuration",
    "target",
    "load_balancer",
    "blue_green",
)
AUTO_ROLLBACK_KEYS = ("enabled", "events")
STYLE_KEYS = ("deployment_type", "deployment_option")
ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST")


ALARM_HINT = "see the alarm_configuration section of docs/workspace.md for each alarm kind"
_ALARM_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _alarm_node(node: Node, path: str, where: str) -> Node:
    """The deepest node that a problem's `where` names under `path`, so a problem is reported
    at the line of its key (a missing key at its mapping's)."""
    at = node
    rest = where[len(path) :] if where.startswith(path) else ""
    for step in _ALARM_STEP.finditer(rest):
        key, index = step.group(1), step.group(2)
        found: Node | None = None
        if key is not None and at.is_mapping:
            found = at.get(key)
        elif index is not None and at.is_sequence and int(index) < len(at.items):
            found = at.items[int(index)]
        if found is None:
            break
        at = found
    return at


def plain(node: Node, memo: dict[int, Any] | None = None) -> Any:
    """A node as plain Python data. Aliased nodes become one shared object, so an alias bomb
    stays as small as it is in the document."""
    memo = {} if memo is None else memo
    if id(node) in memo:
        return memo[id(node)]
    if node.is_scalar:
        return node.value
    if node.is_sequence:
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(plain(item, memo) for item in node.items)
        return items
    mapping: dict[Any, Any] = {}
    memo[id(node)] = mapping
    for key, value in node.pairs:
        mapping[key.value if key.is_scalar else key.render()] = plain(value, memo)
    return mapping


class GroupChecker:
    def __init__(
        self,
        reader: Reader,
        folder: Path,
        configs: ConfigsSection,
        instance_tags: dict[str, dict[str, str]],
    ) -> None:
        self.read = reader
        self.folder = folder
        self.configs = configs
        self.instance_tags = instance_tags
        self.tag_checker = TagChecker(reader)
        self.trigger_checker = TriggerChecker(reader, folder)
        self.balancer_checker = BalancerChecker(reader, folder)
        self.blue_green_checker = BlueGreenChecker(reader, self.tag_checker)

    def check(self, section: Node | None) -> dict[str, Application]:
        applications: dict[str, Application] = {}
        if section is None:
            return applications
        mapping = self.read.mapping(
            section,
            "applications",
            "applications",
            "write applications: then one indented entry per application name",
        )
        if mapping is None:
            return applications
        for name, key, node in self.read.named(mapping, "applications", "application"):
            app = self.application(name, key, node)
            if app is not None:
                applications[name] = app
        return applications

    def application(self, name: str, key: Node, node: Node) -> Application | None:
        """The application, or None when anything in it had an error (all are reported)."""
        errors_before = self.read.r.error_count()
        path = key_path("applications", name)
        body = self.read.mapping(
            node, path, f"application {name}", "write compute_platform: and deployment_groups:"
        )
        if body is None:
            return None if not node.is_null else Application(name)
        self.read.unknown_keys(body, path, APPLICATION_KEYS, f"application {name}")
        platform: ComputePlatform | None = ComputePlatform.SERVER
        platform_node = body.get("compute_platform")
        if platform_node is not None and not platform_node.is_null:
            chosen = self.read.choice(
                platform_node,
                key_path(path, "compute_platform"),
                "compute_platform",
                COMPUTE_PLATFORMS,
            )
            platform = None if chosen is None else ComputePlatform(chosen)
        groups: dict[str, DeploymentGroup] = {}
        groups_node = body.get("deployment_groups")
        groups_path = key_path(path, "deployment_groups")
        section = None
        if groups_node is not None:
            section = self.read.mapping(
                groups_node,
                groups_path,
                "deployment_groups",
                "write deployment_groups: then one indented entry per group name",
            )
        for group_name, group_key, group_node in (
            self.read.named(section, groups_path, "deployment group") if section else ()
        ):
            group = self.group(name, platform, group_name, group_key, group_node)
            if group is not None:
                groups[group_name] = group
        if self.read.r.error_count() != errors_before:
            return None
        if platform is None:  # pragma: no cover - choice() reported the bad value above
            raise RuntimeError(f"application {name}: compute_platform unread but no error reported")
        return Application(name, platform, groups)

    # --- one deployment group -------------------------------------------------------------

    def group(
        self, app: str, platform: Any, name: str, key: Node, node: Node
    ) -> DeploymentGroup | None:
        """The group, or None when any of its fields had an error (all are reported)."""
        errors_before = self.read.r.error_count()
        path = key_path(key_path(key_path("applications", app), "deployment_groups"), name)
        body = self.read.mapping(
            node, path, f"deployment group {name}", "write deployment_config:, tag_filters: ..."
        )
        if body is None and not node.is_null:
            return None
        fields: dict[str, Node] = {}
        keys: dict[str, Node] = {}  # the key nodes, where whole-field problems are reported
        if body is not None:
            self.read.unknown_keys(body, path, GROUP_KEYS, f"deployment group {name}")
            fields = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
            keys = {k.value: k for k, v in body.pairs if k.is_str and not v.is_null}
        values: dict[str, Any] = {}

        def take(field: str, value: Any) -> None:
            if value is not None:  # None: reported, or absent (the default stays)
                values[field] = value

        if "deployment_config" in fields:
            take(
                "deployment_config",
                self.deployment_config(fields["deployment_config"], path, platform, app),
            )
        filters = fields.get("tag_filters")
        tag_set = fields.get("tag_set")
        if platform in ("Lambda", "ECS"):
            for field_name, given in (("tag_filters", filters), ("tag_set", tag_set)):
                if given is not None:
                    self.read.error(
                        keys[field_name],
                        key_path(path, field_name),
                        f"a {platform} deployment group selects no instances, so it takes no "
                        f"{field_name}",
                        f"remove {field_name}; a {platform} group's target goes under target:",
                    )
        else:
            if filters is not None:
                take(
                    "tag_filters",
                    self.tag_checker.tag_filters(filters, key_path(path, "tag_filters")),
                )
            if tag_set is not None:
                take("tag_set", self.tag_checker.tag_set(tag_set, key_path(path, "tag_set")))
            if filters is not None and filters.items and tag_set is not None and tag_set.items:
                self.read.error(
                    keys["tag_set"],
                    key_path(path, "tag_set"),
                    "tag_filters and tag_set cannot be combined in one deployment group",
                    "use only tag_set (add the filters as one more tag group), or only tag_filters",
                )
        if "deployment_style" in fields:
            take("deployment_style", self.deployment_style(fields["deployment_style"], path))
        if "auto_rollback" in fields:
            take("auto_rollback", self.auto_rollback(fields["auto_rollback"], path))
        if "ignore_application_stop_failures" in fields:
            take(
                "ignore_application_stop_failures",
                self.read.boolean(
                    fields["ignore_application_stop_failures"],
                    key_path(path, "ignore_application_stop_failures"),
                    "ignore_application_stop_failures",
                ),
            )
        if "file_exists_behavior" in fields:
            take(
                "file_exists_behavior",
                self.read.choice(
                    fields["file_exists_behavior"],
                    key_path(path, "file_exists_behavior"),
                    "file_exists_behavior",
                    FILE_EXISTS_BEHAVIORS,
                ),
            )
        if "triggers" in fields:
            take(
                "triggers",
                self.trigger_checker.triggers(fields["triggers"], key_path(path, "triggers")),
            )
        if "alarm_configuration" in fields:
            take(
                "alarm_configuration",
                self.alarm_configuration(
                    fields["alarm_configuration"], key_path(path, "alarm_configuration")
                ),
            )
        if "target" in fields:
            target_path = key_path(path, "target")
            if platform == "Server":
                self.read.warning(
                    fields["target"],
                    target_path,
                    "target is read only for Lambda and ECS deployment groups; it is ignored",
                    "remove target, or set the application's compute_platform",
                )
            else:
                take("target", self.target(fields["target"], target_path))
        if "load_balancer" in fields:
            take(
                "load_balancer",
                self.balancer_checker.load_balancer(fields["load_balancer"], path),
            )
        self.check_traffic_control(values, keys, path, platform, node)
        if "blue_green" in fields:
            take("blue_green", self.blue_green(fields["blue_green"], keys, values, path, platform))
        if self.read.r.error_count() != errors_before or platform is None:
            return None
        group = DeploymentGroup(app, name, platform, **values)
        self.warn_if_empty(group, key, path)
        return group

    def check_traffic_control(
        self, values: dict[str, Any], keys: dict[str, Node], path: str, platform: Any, node: Node
    ) -> None:
        """As in CodeDeploy, the style's deployment_option says whether BlockTraffic and
        AllowTraffic run: WITH_TRAFFIC_CONTROL needs a load_balancer, and a load_balancer
        without it is not used."""
        style = values.get("deployment_style")
        with_traffic = (
            style is not None and style.deployment_option == DeploymentOption.WITH_TRAFFIC_CONTROL
        )
        if "load_balancer" in keys and platform in ("Lambda", "ECS"):
            self.read.error(
                keys["load_balancer"],
                key_path(path, "load_balancer"),
                f"a {platform} deployment group shifts traffic itself: it takes no load_balancer",
                "remove load_balancer",
            )
        elif with_traffic and platform == "Server" and "load_balancer" not in keys:
            self.read.missing(
                keys.get("deployment_style", node),
                key_path(path, "load_balancer"),
                "deployment_option WITH_TRAFFIC_CONTROL needs the group's load_balancer",
                "add load_balancer: {kind: builtin, port: 8000, port_env: WEB_PORT}, or write "
                "deployment_option: WITHOUT_TRAFFIC_CONTROL",
            )
        elif "load_balancer" in keys and not with_traffic and platform == "Server":
            self.read.warning(
                keys["load_balancer"],
                key_path(path, "load_balancer"),
                "load_balancer is used only with deployment_option WITH_TRAFFIC_CONTROL; "
                "deployments of this group do not block or allow traffic",
                "write deployment_style: {deployment_option: WITH_TRAFFIC_CONTROL}",
            )

    def blue_green(
        self, node: Node, keys: dict[str, Node], values: dict[str, Any], path: str, platform: Any
    ) -> Any:
        """The group's blue/green settings; read only for a Server BLUE_GREEN group."""
        style = values.get("deployment_style")
        if platform != "Server" or style is None or style.deployment_type != "BLUE_GREEN":
            self.read.warning(
                keys["blue_green"],
                key_path(path, "blue_green"),
                "blue_green is read only for a Server group with deployment_type BLUE_GREEN; "
                "it is ignored",
                "write deployment_style: {deployment_type: BLUE_GREEN, deployment_option: "
                "WITH_TRAFFIC_CONTROL}, or remove blue_green",
            )
            return None
        config = self.blue_green_checker.blue_green(node, path)
        if config is not None:
            group = DeploymentGroup(
                "", "", tag_filters=values.get("tag_filters", ()), tag_set=values.get("tag_set", ())
            )
            self.blue_green_checker.overlap(
                config, group.matches, self.instance_tags, keys["blue_green"], path
            )
        return config

    def deployment_config(self, node: Node, path: str, platform: Any, app: str) -> str | None:
        at = key_path(path, "deployment_config")
        name = self.read.string(node, at, "deployment_config", "CodeDeployDefault.OneAtATime")
        if name is None or name in self.configs.broken:
            return name
        config: DeploymentConfig | None = PREDEFINED_CONFIGS.get(name) or self.configs.configs.get(
            name
        )
        suitable = [
            c.name
            for c in (*PREDEFINED_CONFIGS.values(), *self.configs.configs.values())
            if platform is None or c.compute_platform == platform
        ]
        if config is None:
            guess = closest(name, [*PREDEFINED_CONFIGS, *self.configs.configs])
            self.read.error(
                node,
                at,
                f"there is no deployment config named {name!r}",
                f"write deployment_config: {guess}"
                if guess
                else f"use one of: {', '.join(suitable)}, or define {name} under "
                "deployment_configs:",
            )
            return None
        if platform is not None and config.compute_platform != platform:
            self.read.error(
                node,
                at,
                f"{name} is a {config.compute_platform} deployment config, but application "
                f"{app} deploys to {platform}",
                f"use a {platform} config: {', '.join(suitable)}",
            )
            return None
        return name

    def warn_if_empty(self, group: DeploymentGroup, key: Node, path: str) -> None:
        if group.compute_platform != "Server":
            return
        if any(group.matches(tags) for tags in self.instance_tags.values()):
            return
        selectors = [str(f) for f in group.tag_filters] or [
            " and ".join("(" + " or ".join(str(f) for f in g) + ")" for g in group.tag_set)
        ]
        hint = (
            f"add tag_filters to select instances by tag, e.g. tag_filters: [{FILTER_EXAMPLE[2:]}]"
            if not group.tag_filters and not group.tag_set
            else f"tag an instance to match {' or '.join(s for s in selectors if s)}, or "
            "change the filters"
        )
        self.read.warning(
            key,
            path,
            f"deployment group {group.application}/{group.name} matches no instance; a "
            "deployment to it would fail with NO_INSTANCES",
            hint,
        )

    # --- style, rollback, triggers, target ------------------------------------------------

    def deployment_style(self, node: Node, group_path: str) -> DeploymentStyle | None:
        """CodeDeploy's deploymentStyle; a key left out keeps its default (IN_PLACE,
        WITHOUT_TRAFFIC_CONTROL). Whether the engine can run the style is decided when a
        deployment is created, so a workspace can describe what it will need."""
        path = key_path(group_path, "deployment_style")
        example = (
            "write deployment_style: {deployment_type: IN_PLACE, "
            "deployment_option: WITHOUT_TRAFFIC_CONTROL}"
        )
        body = self.read.mapping(node, path, "deployment_style", example)
        if body is None:
            return None
        self.read.unknown_keys(body, path, STYLE_KEYS, "deployment_style")
        values: dict[str, Any] = {}
        for field_name, choices in (
            ("deployment_type", DeploymentType),
            ("deployment_option", DeploymentOption),
        ):
            given = body.get(field_name)
            if given is None or given.is_null:
                continue  # the default stays
            chosen = self.read.choice(
                given, key_path(path, field_name), field_name, tuple(c.value for c in choices)
            )
            values[field_name] = None if chosen is None else choices(chosen)
        if None in values.values():
            return None
        return DeploymentStyle(**values)

    def auto_rollback(self, node: Node, group_path: str) -> AutoRollback | None:
        path = key_path(group_path, "auto_rollback")
        example = "write auto_rollback: {enabled: true, events: [DEPLOYMENT_FAILURE]}"
        body = self.read.mapping(node, path, "auto_rollback", example)
        if body is None:
            return None
        self.read.unknown_keys(body, path, AUTO_ROLLBACK_KEYS, "auto_rollback")
        enabled: bool | None = True  # writing the section turns it on unless it says otherwise
        enabled_node = body.get("enabled")
        if enabled_node is not None:
            enabled = self.read.boolean(enabled_node, key_path(path, "enabled"), "enabled")
        events: tuple[str, ...] | None = ()
        events_node = body.get("events")
        if events_node is not None:
            events = self.read.choice_list(
                events_node, key_path(path, "events"), "events", ROLLBACK_EVENTS, example
            )
        if enabled is None or events is None:
            return None
        if enabled and not events:
            self.read.missing(
                events_node or node,
                key_path(path, "events"),
                "auto_rollback is enabled with no events (InvalidAutoRollbackConfig)",
                "add events: [DEPLOYMENT_FAILURE] (and DEPLOYMENT_STOP_ON_REQUEST, "
                "DEPLOYMENT_STOP_ON_ALARM as needed), or write enabled: false",
            )
            return None
        return AutoRollback(enabled, events)

    def alarm_configuration(self, node: Node, path: str) -> AlarmConfiguration | None:
        """The group's alarms; each problem is reported at the line of the key it names."""
        try:
            return parse_alarm_configuration(plain(node), path)
        except AlarmConfigError as error:
            for problem in error.problems:
                where, _, message = problem.partition(": ")
                self.read.error(_alarm_node(node, path, where), where, message, ALARM_HINT)
            return None

    def target(self, node: Node, path: str) -> dict[str, Any] | None:
        """A Lambda or ECS group's target, kept as written until its schema exists."""
        body = self.read.mapping(node, path, "target", "write target: then the target's settings")
        return None if body is None else plain(body)
