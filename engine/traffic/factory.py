"""From a deployment group's balancer settings to a running `LoadBalancer`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import Clock
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.command import BalancerCommands, CommandBalancer
from engine.traffic.haproxy import HAProxyBalancer
from engine.traffic.model import LoadBalancer, Target, TrafficSettings


@dataclass(frozen=True)
class BuiltinSpec:
    """The embedded proxy, listening on host:port (port 0: any free one)."""

    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True)
class HAProxySpec:
    """HAProxy: owned (deploydeck writes its config under the group's state folder, starts and
    stops it) unless `socket` is given, which attaches to a running one by `backend` and
    `servers` (instance name -> server name; missing ones use the instance's name)."""

    host: str = "127.0.0.1"
    port: int = 8080
    socket: Path | None = None
    backend: str = ""
    servers: Mapping[str, str] = field(default_factory=dict)
    binary: str = "haproxy"


@dataclass(frozen=True)
class CommandSpec:
    commands: BalancerCommands
    cwd: str | None = None


BalancerSpec = BuiltinSpec | HAProxySpec | CommandSpec


def make_balancer(
    spec: BalancerSpec,
    targets: Sequence[Target],
    settings: TrafficSettings,
    clock: Clock,
    state_dir: Path,
) -> LoadBalancer:
    """The balancer `spec` describes, not yet started (call `start()`, and `close()` after)."""
    if isinstance(spec, BuiltinSpec):
        return BuiltinBalancer(targets, settings, clock, spec.host, spec.port)
    if isinstance(spec, HAProxySpec):
        if spec.socket is not None:
            servers = {t.name: spec.servers.get(t.name, t.name) for t in targets}
            return HAProxyBalancer.attach(spec.socket, spec.backend, servers, settings, clock)
        return HAProxyBalancer.owned(
            state_dir, targets, (spec.host, spec.port), settings, clock, spec.binary
        )
    return CommandBalancer(targets, spec.commands, settings, clock, cwd=spec.cwd)
