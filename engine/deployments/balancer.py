"""The load balancer of an in-place deployment with traffic control, built from the group's
`load_balancer:` in deploydeck.yml. Every instance of the group is behind it (not only those
this deployment targets), at 127.0.0.1 (its SSH host for an SSH instance) and the port its
`port_env` variable holds. The balancer lives as long as the run: the runner starts it before
the first batch and closes it when the run ends."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.clock import Clock
from engine.workspace import Workspace
from engine.workspace.model import Instance, LoadBalancerConfig

if TYPE_CHECKING:
    from engine.traffic.model import LoadBalancer, Target, TrafficSettings


class BalancerConfigError(Exception):
    """The group's balancer cannot be built; the message names the instance or key to fix."""


def instance_target(instance: Instance, config: LoadBalancerConfig) -> Target:
    """Where the balancer sends `instance`'s traffic."""
    from engine.traffic.model import Target

    host = instance.ssh.host if instance.ssh is not None else "127.0.0.1"
    value = instance.environment.get(config.port_env)
    if value is None:
        raise BalancerConfigError(
            f"instance {instance.name} has no {config.port_env} in its environment, so the "
            f"load balancer does not know its port: add environment: {{{config.port_env}: "
            "<port>}} to the instance, or set the group's load_balancer.port_env"
        )
    try:
        port = int(value.value)
        return Target(instance.name, host, port)
    except ValueError:
        raise BalancerConfigError(
            f"instance {instance.name}: {config.port_env} is {value.value!r}, not a port "
            "from 1 to 65535"
        ) from None


def traffic_settings(config: LoadBalancerConfig) -> TrafficSettings:
    from engine.traffic.model import HealthCheck, TrafficSettings

    check = config.health_check
    return TrafficSettings(
        HealthCheck(
            check.path,
            check.interval_seconds,
            check.timeout_seconds,
            check.healthy_threshold,
            check.unhealthy_threshold,
        ),
        config.deregistration_delay_seconds,
        config.allow_timeout_seconds,
    )


def group_balancer(
    workspace: Workspace,
    app: str,
    group: str,
    clock: Clock,
    instances: Sequence[Instance] | None = None,
) -> LoadBalancer:
    """The group's balancer, not started, over `instances` (default: the group's);
    BalancerConfigError when it cannot be built."""
    from engine.traffic.command import BalancerCommands
    from engine.traffic.factory import BuiltinSpec, CommandSpec, HAProxySpec, make_balancer
    from engine.traffic.model import TrafficError

    config = workspace.group(app, group).load_balancer
    if config is None:
        raise BalancerConfigError(
            f"deployment group {app}/{group} has no load_balancer: add one to deploydeck.yml"
        )
    behind = workspace.group_instances(app, group) if instances is None else instances
    targets = [instance_target(i, config) for i in behind]
    spec: BuiltinSpec | HAProxySpec | CommandSpec
    if config.kind == "builtin":
        spec = BuiltinSpec(config.host, config.port or 0)
    elif config.kind == "haproxy":
        spec = HAProxySpec(
            config.host,
            8080 if config.port is None else config.port,
            config.socket,
            config.backend,
            config.servers,
        )
    else:
        commands = config.commands
        spec = CommandSpec(
            BalancerCommands(
                commands["block"],
                commands["allow"],
                commands["health"],
                commands.get("drained"),
                config.command_timeout_seconds,
            ),
            cwd=str(workspace.path.parent),
        )
    state_dir = balancer_dir(workspace, app, group)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return make_balancer(spec, targets, traffic_settings(config), clock, state_dir)
    except (TrafficError, ValueError) as error:
        raise BalancerConfigError(f"load balancer of {app}/{group}: {error}") from None


def balancer_dir(workspace: Workspace, app: str, group: str) -> Path:
    """Where an owned HAProxy's config and socket live (short: a socket path is limited)."""
    return workspace.state_dir / "lb" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{app}.{group}")[:60]
