"""The ECS appspec (docs/codedeploy-service.md#lambda-and-ecs-appspecs): one AWS::ECS::Service
resource that gets a replacement task set, and the five ECS hooks.

Accepted as YAML or JSON. Keys are matched case-insensitively (the AWS reference page writes
them in lowercase, its examples in PascalCase); see `resource_appspec` for the shared rules.
`ContainerPort` must be a number, not a string, as the service requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.appspec.diagnostics import AppSpecResult
from engine.appspec.document import Node
from engine.appspec.events import ECS_HOOK_EVENTS, ECS_RESERVED_EVENTS
from engine.appspec.report import Reporter, key_path, shown
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

ECS_TYPE = "AWS::ECS::Service"
ECS_PROPERTY_KEYS = (
    "TaskDefinition",
    "LoadBalancerInfo",
    "PlatformVersion",
    "NetworkConfiguration",
    "CapacityProviderStrategy",
)
LOAD_BALANCER_KEYS = ("ContainerName", "ContainerPort")
AWSVPC_KEYS = ("Subnets", "SecurityGroups", "AssignPublicIp")
CAPACITY_PROVIDER_KEYS = ("Base", "CapacityProvider", "Weight")
ASSIGN_PUBLIC_IP_VALUES = ("ENABLED", "DISABLED")
DEFAULT_PLATFORM_VERSION = "LATEST"

_PLATFORM = Platform(
    label="ECS",
    resource_type=ECS_TYPE,
    target="service",
    hook_events=ECS_HOOK_EVENTS,
    reserved_events=ECS_RESERVED_EVENTS,
    example_resource="Type: AWS::ECS::Service with TaskDefinition and LoadBalancerInfo",
)


@dataclass(frozen=True)
class AwsVpcConfiguration:
    """The replacement task set's network: all three settings, or no NetworkConfiguration."""

    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: str


@dataclass(frozen=True)
class CapacityProviderItem:
    """One entry of CapacityProviderStrategy; `base` and `weight` default to 0."""

    capacity_provider: str
    base: int = 0
    weight: int = 0


@dataclass(frozen=True)
class EcsServiceTarget:
    """The service that gets a replacement task set, and where its traffic enters."""

    logical_name: str
    task_definition: str
    container_name: str
    container_port: int
    platform_version: str = DEFAULT_PLATFORM_VERSION
    network_configuration: AwsVpcConfiguration | None = None
    capacity_provider_strategy: tuple[CapacityProviderItem, ...] = ()


@dataclass(frozen=True)
class EcsAppSpec(ResourceAppSpec[EcsServiceTarget]):
    """An ECS appspec: the service that gets a replacement task set, and its hook functions."""


def parse_ecs_appspec(text: str, *, filename: str = "appspec.yaml") -> AppSpecResult[EcsAppSpec]:
    """Parse and check an ECS appspec (YAML or JSON). Never raises on bad input."""
    return parse_resource_appspec(
        text,
        filename,
        _PLATFORM,
        lambda body, reporter: _Service(reporter).check(
            body.logical_name, body.properties, body.path
        ),
        EcsAppSpec,
    )


def load_ecs_appspec(path: str | Path) -> AppSpecResult[EcsAppSpec]:
    """Read and parse the ECS appspec at `path`. OSError propagates."""
    return load_resource_appspec(path, parse_ecs_appspec)


def _truthy_word(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("yes", "true", "on", "enabled", "1")


def _is_int(node: Node) -> bool:
    return node.is_scalar and isinstance(node.value, int) and not isinstance(node.value, bool)


class _Service:
    def __init__(self, reporter: Reporter) -> None:
        self.r = reporter

    def check(self, logical: str, props: Node, path: str) -> EcsServiceTarget | None:
        errors_before = self.r.error_count()
        warn_unknown_keys(props, path, ECS_PROPERTY_KEYS, "an ECS service's Properties", self.r)
        task = required_string(
            props,
            "TaskDefinition",
            path,
            self.r,
            '"arn:aws:ecs:REGION:ACCOUNT:task-definition/family:revision"',
        )
        container = self.load_balancer(props, path)
        platform_version = self.platform_version(props, path)
        network = self.network(props, path)
        strategy = self.capacity_providers(props, path)
        if self.r.error_count() != errors_before or task is None or container is None:
            return None
        return EcsServiceTarget(
            logical, task, container[0], container[1], platform_version, network, strategy
        )

    def load_balancer(self, props: Node, path: str) -> tuple[str, int] | None:
        node = ci_get(props, "LoadBalancerInfo", self.r, path)
        where = written_key(props, "LoadBalancerInfo", path)
        example = "LoadBalancerInfo: with ContainerName: web and ContainerPort: 80 under it"
        if node is None or node.is_null:
            self.r.error(props, where, "LoadBalancerInfo is required", f"add {example}", value=None)
            return None
        if not node.is_mapping:
            self.r.error(
                node, where, f"LoadBalancerInfo must be a mapping (got {describe(node)})", example
            )
            return None
        warn_unknown_keys(node, where, LOAD_BALANCER_KEYS, "LoadBalancerInfo", self.r)
        name = required_string(node, "ContainerName", where, self.r, "web")
        port_node = ci_get(node, "ContainerPort", self.r, where)
        port_where = written_key(node, "ContainerPort", where)
        port = None
        if port_node is None or port_node.is_null:
            self.r.error(
                node,
                port_where,
                "ContainerPort is required",
                "add ContainerPort: 80 (the container port the load balancer sends traffic to)",
                value=None,
            )
        elif port_node.is_str:
            text = str(port_node.value).strip()
            hint = (
                f"write ContainerPort: {text} without quotes"
                if text.isdigit()
                else ("write e.g. ContainerPort: 80")
            )
            self.r.error(
                port_node,
                port_where,
                f"ContainerPort must be a number, not a string (got {port_node.value!r})",
                hint,
            )
        elif not _is_int(port_node):
            self.r.error(
                port_node,
                port_where,
                f"ContainerPort must be a whole port number (got {describe(port_node)})",
                "write e.g. ContainerPort: 80",
            )
        elif not 1 <= port_node.value <= 65535:
            self.r.error(
                port_node,
                port_where,
                f"ContainerPort must be between 1 and 65535 (got {shown(port_node)})",
                "write e.g. ContainerPort: 80",
            )
        else:
            port = int(port_node.value)
        if name is None or port is None:
            return None
        return name, port

    def platform_version(self, props: Node, path: str) -> str:
        node = ci_get(props, "PlatformVersion", self.r, path)
        if node is None or node.is_null:
            return DEFAULT_PLATFORM_VERSION
        where = written_key(props, "PlatformVersion", path)
        if not node.is_str or not str(node.value).strip():
            self.r.error(
                node,
                where,
                f"PlatformVersion must be a Fargate platform version string (got {describe(node)})",
                'write PlatformVersion: "LATEST" or e.g. PlatformVersion: "1.4.0"',
            )
            return DEFAULT_PLATFORM_VERSION
        return str(node.value)

    def network(self, props: Node, path: str) -> AwsVpcConfiguration | None:
        node = ci_get(props, "NetworkConfiguration", self.r, path)
        if node is None or node.is_null:
            return None
        where = written_key(props, "NetworkConfiguration", path)
        example = (
            "NetworkConfiguration: then AwsvpcConfiguration: with Subnets, SecurityGroups and "
            "AssignPublicIp"
        )
        if not node.is_mapping:
            self.r.error(
                node,
                where,
                f"NetworkConfiguration must be a mapping (got {describe(node)})",
                f"write {example}",
            )
            return None
        warn_unknown_keys(node, where, ("AwsvpcConfiguration",), "NetworkConfiguration", self.r)
        vpc = ci_get(node, "AwsvpcConfiguration", self.r, where)
        vpc_where = written_key(node, "AwsvpcConfiguration", where)
        if vpc is None or vpc.is_null:
            self.r.error(
                node,
                vpc_where,
                "NetworkConfiguration needs an AwsvpcConfiguration",
                f"write {example}, or remove NetworkConfiguration to keep the service's network",
                value=None,
            )
            return None
        if not vpc.is_mapping:
            self.r.error(
                vpc,
                vpc_where,
                f"AwsvpcConfiguration must be a mapping (got {describe(vpc)})",
                f"write {example}",
            )
            return None
        warn_unknown_keys(vpc, vpc_where, AWSVPC_KEYS, "AwsvpcConfiguration", self.r)
        present = {key: ci_get(vpc, key, self.r, vpc_where) for key in AWSVPC_KEYS}
        given = [k for k, v in present.items() if v is not None and not v.is_null]
        if not given:
            return None  # none of the three: the service keeps its current network settings
        missing = [k for k in AWSVPC_KEYS if k not in given]
        if missing:
            self.r.error(
                vpc,
                vpc_where,
                f"AwsvpcConfiguration gives {', '.join(given)} but not {', '.join(missing)}; "
                "all three are needed, or none",
                f"add {', '.join(missing)}, or remove AwsvpcConfiguration",
                value=None,
            )
        subnets = self.string_list(vpc, "Subnets", vpc_where, '["subnet-1", "subnet-2"]')
        groups = self.string_list(vpc, "SecurityGroups", vpc_where, '["sg-1"]')
        assign = None
        assign_node = present["AssignPublicIp"]
        if assign_node is not None and not assign_node.is_null:
            if assign_node.is_str and assign_node.value in ASSIGN_PUBLIC_IP_VALUES:
                assign = str(assign_node.value)
            else:
                guess = "ENABLED" if _truthy_word(assign_node.value) else "DISABLED"
                self.r.error(
                    assign_node,
                    written_key(vpc, "AssignPublicIp", vpc_where),
                    f"AssignPublicIp must be ENABLED or DISABLED (got {describe(assign_node)})",
                    f'write AssignPublicIp: "{guess}"',
                )
        if missing or subnets is None or groups is None or assign is None:
            return None
        return AwsVpcConfiguration(subnets, groups, assign)

    def string_list(self, vpc: Node, key: str, where: str, example: str) -> tuple[str, ...] | None:
        node = ci_get(vpc, key, self.r, where)
        if node is None or node.is_null:
            return None
        path = written_key(vpc, key, where)
        if not node.is_sequence or not node.items:
            self.r.error(
                node,
                path,
                f"{key} must be a non-empty list of ids (got {describe(node)})",
                f"write {key}: {example}",
            )
            return None
        values = []
        for i, item in enumerate(node.items):
            if not item.is_str or not str(item.value).strip():
                self.r.error(
                    item,
                    key_path(path, i),
                    f"each of {key} must be an id string (got {describe(item)})",
                    f"write {key}: {example}",
                )
                return None
            values.append(str(item.value))
        return tuple(values)

    def capacity_providers(self, props: Node, path: str) -> tuple[CapacityProviderItem, ...]:
        node = ci_get(props, "CapacityProviderStrategy", self.r, path)
        if node is None or node.is_null:
            return ()
        where = written_key(props, "CapacityProviderStrategy", path)
        example = "- CapacityProvider: FARGATE with Base: 1 and Weight: 1 under it"
        if not node.is_sequence:
            self.r.error(
                node,
                where,
                f"CapacityProviderStrategy must be a list (got {describe(node)})",
                f"write CapacityProviderStrategy: then {example}",
            )
            return ()
        items: list[CapacityProviderItem] = []
        with_base: list[tuple[int, Node]] = []
        for i, entry in enumerate(node.items):
            entry_path = key_path(where, i)
            if not entry.is_mapping:
                self.r.error(
                    entry,
                    entry_path,
                    f"a capacity provider entry must be a mapping (got {describe(entry)})",
                    f"write {example}",
                )
                continue
            warn_unknown_keys(
                entry, entry_path, CAPACITY_PROVIDER_KEYS, "a capacity provider", self.r
            )
            name = required_string(entry, "CapacityProvider", entry_path, self.r, "FARGATE")
            base_node = ci_get(entry, "Base", self.r, entry_path)
            if base_node is not None and not base_node.is_null:
                with_base.append((i, base_node))
            base = self.count(entry, "Base", entry_path, 100000)
            weight = self.count(entry, "Weight", entry_path, 1000)
            if name is not None and base is not None and weight is not None:
                items.append(CapacityProviderItem(name, base, weight))
        for index, extra in with_base[1:]:
            self.r.error(
                extra,
                written_key(node.items[index], "Base", key_path(where, index)),
                "only one capacity provider may have a Base "
                f"(first on line {with_base[0][1].line})",
                "keep Base on one provider and remove it from the others",
            )
        if (
            node.items
            and items
            and len(items) == len(node.items)
            and not any(item.weight > 0 for item in items)
        ):
            self.r.error(
                node,
                where,
                "every capacity provider has weight 0; at least one weight must be above 0",
                "give at least one provider e.g. Weight: 1",
                value=None,
            )
        return tuple(items)

    def count(self, entry: Node, key: str, path: str, maximum: int) -> int | None:
        node = ci_get(entry, key, self.r, path)
        if node is None or node.is_null:
            return 0
        if not _is_int(node) or not 0 <= node.value <= maximum:
            self.r.error(
                node,
                written_key(entry, key, path),
                f"{key} must be a whole number from 0 to {maximum} (got {describe(node)})",
                f"write e.g. {key}: 1",
            )
            return None
        return int(node.value)
