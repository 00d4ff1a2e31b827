"""A deployment group's `load_balancer:`: the balancer BlockTraffic and AllowTraffic drive in
an in-place deployment with traffic control (builtin proxy, HAProxy owned or attached, or
commands), its health check and its drain and allow timings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.workspace.model import HealthCheckConfig, LoadBalancerConfig
from engine.workspace.reader import Reader

KINDS = ("builtin", "haproxy", "command")
COMMON_KEYS = (
    "kind",
    "port_env",
    "health_check",
    "deregistration_delay_seconds",
    "allow_timeout_seconds",
)
KIND_KEYS = {
    "builtin": ("host", "port"),
    "haproxy": ("host", "port", "socket", "backend", "servers"),
    "command": ("commands",),
}
HEALTH_KEYS = (
    "path",
    "interval_seconds",
    "timeout_seconds",
    "healthy_threshold",
    "unhealthy_threshold",
)
COMMAND_KEYS = ("block", "allow", "health", "drained", "timeout_seconds")
EXAMPLE = "write load_balancer: {kind: builtin, port: 8000, port_env: WEB_PORT}"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BalancerChecker:
    def __init__(self, reader: Reader, folder: Path) -> None:
        self.read = reader
        self.folder = folder

    def load_balancer(self, node: Node, group_path: str) -> LoadBalancerConfig | None:
        """The group's balancer, or None when anything in it had an error (all reported)."""
        path = key_path(group_path, "load_balancer")
        body = self.read.mapping(node, path, "load_balancer", EXAMPLE)
        if body is None:
            return None
        errors_before = self.read.r.error_count()
        fields = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
        kind_node = fields.get("kind")
        if kind_node is None:
            self.read.missing(
                node, key_path(path, "kind"), "load_balancer needs a kind", "write kind: builtin"
            )
            return None
        kind = self.read.choice(kind_node, key_path(path, "kind"), "kind", KINDS)
        if kind is None:
            return None
        self.read.unknown_keys(body, path, (*COMMON_KEYS, *KIND_KEYS[kind]), f"a {kind} balancer")
        values: dict[str, Any] = {}
        for name in ("host", "backend", "port_env"):
            if name in fields:
                values[name] = self.read.string(
                    fields[name], key_path(path, name), name, "127.0.0.1"
                )
        port_env = values.get("port_env")
        if port_env is not None and not _ENV_NAME.fullmatch(port_env):
            self.read.error(
                fields["port_env"],
                key_path(path, "port_env"),
                f"port_env {port_env!r} is not an environment variable name",
                "write port_env: WEB_PORT (the variable holding each instance's port)",
            )
        if "port" in fields:
            values["port"] = self.read.integer(
                fields["port"], key_path(path, "port"), "port", 8000, 0, 65535
            )
        if "socket" in fields:
            socket = self.read.string(
                fields["socket"], key_path(path, "socket"), "socket", "/run/haproxy/admin.sock"
            )
            values["socket"] = None if socket is None else self.folder / Path(socket).expanduser()
        if "servers" in fields:
            values["servers"] = self.string_map(fields["servers"], key_path(path, "servers"))
        for name in ("deregistration_delay_seconds", "allow_timeout_seconds"):
            if name in fields:
                if name == "deregistration_delay_seconds" and fields[name].value == 0:
                    values[name] = 0.0
                else:
                    values[name] = self.read.positive_number(
                        fields[name], key_path(path, name), name, "30"
                    )
        if "health_check" in fields:
            values["health_check"] = self.health_check(fields["health_check"], path)
        if kind == "command":
            commands_node = fields.get("commands")
            if commands_node is None:
                self.read.missing(
                    node,
                    key_path(path, "commands"),
                    "a command balancer needs commands",
                    "write commands: {block: ..., allow: ..., health: ...}",
                )
            else:
                self.commands(commands_node, key_path(path, "commands"), values)
        if kind == "haproxy" and "socket" in fields and "backend" not in fields:
            self.read.missing(
                node,
                key_path(path, "backend"),
                "an HAProxy attached by socket needs the backend its instances are in",
                "write backend: web",
            )
        if self.read.r.error_count() != errors_before or None in values.values():
            return None
        return LoadBalancerConfig(kind, **values)  # type: ignore[arg-type]

    def health_check(self, node: Node, lb_path: str) -> HealthCheckConfig | None:
        path = key_path(lb_path, "health_check")
        body = self.read.mapping(node, path, "health_check", "write health_check: {path: /}")
        if body is None:
            return None
        self.read.unknown_keys(body, path, HEALTH_KEYS, "health_check")
        fields = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
        values: dict[str, Any] = {}
        if "path" in fields:
            value = self.read.string(fields["path"], key_path(path, "path"), "path", "/healthz")
            if value is not None and (not value.startswith("/") or any(c.isspace() for c in value)):
                self.read.error(
                    fields["path"],
                    key_path(path, "path"),
                    f"health_check.path {value!r} must start with / and hold no spaces",
                    "write path: /healthz",
                )
                value = None
            values["path"] = value
        for name in ("interval_seconds", "timeout_seconds"):
            if name in fields:
                values[name] = self.read.positive_number(
                    fields[name], key_path(path, name), name, "5"
                )
        for name in ("healthy_threshold", "unhealthy_threshold"):
            if name in fields:
                values[name] = self.read.integer(fields[name], key_path(path, name), name, 2, 1)
        if None in values.values():
            return None
        return HealthCheckConfig(**values)

    def commands(self, node: Node, path: str, values: dict[str, Any]) -> None:
        body = self.read.mapping(
            node, path, "commands", "write commands: {block: ..., allow: ..., health: ...}"
        )
        if body is None:
            values["commands"] = None
            return
        self.read.unknown_keys(body, path, COMMAND_KEYS, "commands")
        fields = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
        commands: dict[str, str] = {}
        for name in ("block", "allow", "health"):
            if name not in fields:
                self.read.missing(
                    node,
                    key_path(path, name),
                    f"commands needs {name}",
                    f"write {name}: ./lb.sh {name} $DEPLOYDECK_INSTANCE",
                )
        for name in ("block", "allow", "health", "drained"):
            if name in fields:
                text = self.read.string(fields[name], key_path(path, name), name, "./lb.sh")
                if text is not None:
                    commands[name] = text
        if "timeout_seconds" in fields:
            timeout = self.read.positive_number(
                fields["timeout_seconds"],
                key_path(path, "timeout_seconds"),
                "timeout_seconds",
                "60",
            )
            if timeout is not None:
                values["command_timeout_seconds"] = timeout
        values["commands"] = commands

    def string_map(self, node: Node, path: str) -> dict[str, str] | None:
        body = self.read.mapping(node, path, "servers", "write servers: {i01: web1}")
        if body is None:
            return None
        result: dict[str, str] = {}
        for key, value in body.pairs:
            text = self.read.string(value, key_path(path, str(key.value)), str(key.value), "web1")
            if text is None:
                return None
            result[str(key.value)] = text
        return result
