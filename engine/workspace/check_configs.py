"""The `deployment_configs:` section: custom deployment configurations
(docs/codedeploy-service.md#custom-configurations).

This module checks the shape (mappings, required keys); engine.configs.config_problems decides
the values, and each problem it finds is placed at the line of the key it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.configs import (
    COMPUTE_PLATFORMS,
    DeploymentConfig,
    MinimumHealthyHosts,
    TrafficRouting,
    config_problems,
)
from engine.workspace.reader import Reader, describe

CONFIG_KEYS = ("compute_platform", "minimum_healthy_hosts", "traffic_routing")
MINIMUM_KEYS = ("type", "value")
ROUTING_KEYS = ("type", "percentage", "interval_minutes")


@dataclass
class ConfigsSection:
    """The valid custom configs, and the names of invalid ones (already reported, so a group
    naming one is not reported again)."""

    configs: dict[str, DeploymentConfig] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)


def clause(sentence: str) -> str:
    """engine.configs writes sentences; diagnostics read as `key: clause; hint`."""
    text = sentence.strip().removesuffix(".")
    first = text.split(" ", 1)[0]
    if first.isalpha() and first[0].isupper() and first[1:] == first[1:].lower():
        text = text[0].lower() + text[1:]
    return text


class ConfigChecker:
    def __init__(self, reader: Reader) -> None:
        self.read = reader
        self.out = ConfigsSection()

    def check(self, section: Node | None) -> ConfigsSection:
        if section is None:
            return self.out
        mapping = self.read.mapping(
            section,
            "deployment_configs",
            "deployment_configs",
            "write deployment_configs: then one indented entry per config name",
        )
        if mapping is None:
            return self.out
        for key, node in mapping.pairs:
            label = key.text if key.is_scalar else key.render()
            # The name's rules are config_problems' (they include the reserved prefix).
            name = self.read.key_string(
                key, key_path("deployment_configs", label), "deployment config"
            )
            if name is None:
                continue
            config = self.config(name, key, node)
            if config is None:
                self.out.broken.add(name)
            else:
                self.out.configs[name] = config
        return self.out

    def config(self, name: str, key: Node, node: Node) -> DeploymentConfig | None:
        path = key_path("deployment_configs", name)
        if not node.is_mapping:
            self.read.error(
                node if not node.is_null else key,
                path,
                f"the deployment config {name} must be a mapping (got {describe(node)})",
                "write compute_platform: and minimum_healthy_hosts: (or traffic_routing:) "
                "indented under it",
            )
            return None
        self.read.unknown_keys(node, path, CONFIG_KEYS, f"deployment config {name}")
        reported: set[str] = set()  # keys whose shape is already reported
        platform: Any = "Server"
        platform_node = node.get("compute_platform")
        if platform_node is not None and not platform_node.is_null:
            platform = self.read.choice(
                platform_node,
                key_path(path, "compute_platform"),
                "compute_platform",
                COMPUTE_PLATFORMS,
            )
            if platform is None:
                reported.add("compute_platform")
                platform = platform_node.value if platform_node.is_str else "?"
        minimum = self.part(node, path, "minimum_healthy_hosts", MINIMUM_KEYS, reported)
        routing = self.part(node, path, "traffic_routing", ROUTING_KEYS, reported)
        config = DeploymentConfig(
            name=name,
            compute_platform=platform,
            minimum_healthy_hosts=MinimumHealthyHosts(**minimum) if minimum else None,
            traffic_routing=TrafficRouting(**routing) if routing else None,
        )
        problems = [
            p
            for p in config_problems(config)
            if not any(p.key == r or p.key.startswith(r + ".") for r in reported)
        ]
        for problem in problems:
            target, found = self.locate(key, node, problem.key)
            at = path if problem.key == "name" else key_path(path, problem.key)
            if found:
                self.read.error(target, at, clause(problem.message), clause(problem.hint))
            else:
                self.read.missing(target, at, clause(problem.message), clause(problem.hint))
        return None if problems or reported else config

    def part(
        self, node: Node, path: str, field_name: str, keys: tuple[str, ...], reported: set[str]
    ) -> dict[str, Any] | None:
        """The fields of `minimum_healthy_hosts` or `traffic_routing` as written (values are
        judged by config_problems); None when absent or misshapen (then reported)."""
        pair = node.get_pair(field_name)
        if pair is None or pair[1].is_null:
            return None
        part_key, part = pair
        at = key_path(path, field_name)
        example = (
            "write minimum_healthy_hosts: {type: FLEET_PERCENT, value: 50}"
            if field_name == "minimum_healthy_hosts"
            else "write traffic_routing: {type: TimeBasedCanary, percentage: 10, "
            "interval_minutes: 5}"
        )
        if not part.is_mapping:
            self.read.error(
                part, at, f"{field_name} must be a mapping (got {describe(part)})", example
            )
            reported.add(field_name)
            return None
        self.read.unknown_keys(part, at, keys, field_name)
        fields: dict[str, Any] = {}
        for name in keys:
            value = part.get(name)
            if value is None or value.is_null:
                if name == "type" or (name == "value" and field_name == "minimum_healthy_hosts"):
                    self.read.missing(
                        part_key, key_path(at, name), f"{field_name} has no {name}", example
                    )
                    reported.add(field_name)
                continue
            if not value.is_scalar:
                self.read.error(
                    value,
                    key_path(at, name),
                    f"{name} must be a single value (got {describe(value)})",
                    example,
                )
                reported.add(field_name)
                continue
            fields[name] = value.value
        return None if field_name in reported else fields

    @staticmethod
    def locate(key: Node, node: Node, dotted: str) -> tuple[Node, bool]:
        """The node a problem's dotted key names, or the nearest key written above it."""
        if dotted == "name":
            return key, True
        anchor, current = key, node
        for part in dotted.split("."):
            pair = current.get_pair(part) if current.is_mapping else None
            if pair is None:
                return anchor, False
            anchor, current = pair
        return current, True
