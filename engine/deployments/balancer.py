"""The load balancer of a deployment with traffic control, built from the group's
`load_balancer:` in deploydeck.yml. Every instance of the group is behind it (not only those
this deployment targets), at 127.0.0.1 (its SSH host for an SSH instance) and the port its
`port_env` variable holds.

A balancer deploydeck owns (the built-in proxy, an HAProxy without `socket`) lives in the
group's balancer host (engine/traffic/host.py), which outlives deployments: the run's `start`
starts the host when none runs and configures it with the group's instances and settings, and
the run's `close` leaves it serving. An attached HAProxy and a command balancer are the
operator's and are only driven."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from engine import events as ev
from engine.clock import Clock, RealClock
from engine.model import TrafficHealth, TrafficState
from engine.workspace import Workspace
from engine.workspace.model import Instance, LoadBalancerConfig

if TYPE_CHECKING:
    from engine.hosting.daemon import HostPlace
    from engine.traffic.hosted import HostStatus
    from engine.traffic.model import (
        AllowResult,
        BlockResult,
        InstanceState,
        LoadBalancer,
        Target,
        TrafficSettings,
    )

T = TypeVar("T")
# How often a balancer that can be read cheaply (builtin, HAProxy) is sampled for changes; a
# command balancer runs a command per instance to be read, so it is read at each step's end.
SAMPLE_SECONDS = 0.25
# Outside BlockTraffic and AllowTraffic an instance's counts alone give an event this often.
COUNTS_SECONDS = 2.0


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
    from engine.traffic.hosted import HostedBalancer
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
    try:
        settings = traffic_settings(config)
        if isinstance(spec, CommandSpec) or (
            isinstance(spec, HAProxySpec) and spec.socket is not None
        ):
            state_dir = balancer_dir(workspace, app, group)
            return make_balancer(spec, targets, settings, clock, state_dir)
        return HostedBalancer(
            balancer_place(workspace, app, group),
            f"{app}/{group}",
            config.kind,
            (spec.host, spec.port),
            targets,
            settings,
        )
    except (TrafficError, ValueError) as error:
        raise BalancerConfigError(f"load balancer of {app}/{group}: {error}") from None


def balancer_dir(workspace: Workspace, app: str, group: str) -> Path:
    """The group's balancer state folder (short: socket paths within are limited)."""
    return workspace.state_dir / "lb" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{app}.{group}")[:60]


def balancer_place(workspace: Workspace, app: str, group: str) -> HostPlace:
    """Where the group's balancer host keeps its files (and its HAProxy's)."""
    from engine.hosting.daemon import HostPlace

    return HostPlace(balancer_dir(workspace, app, group) / "balancer")


def traffic_event(deployment_id: str, when: float, state: InstanceState) -> ev.Event:
    """The journal's word for one instance's balancer state."""
    from engine.traffic.model import Health, Service

    service = {
        Service.IN_SERVICE: TrafficState.IN_SERVICE,
        Service.DRAINING: TrafficState.DRAINING,
        Service.OUT_OF_SERVICE: TrafficState.OUT_OF_SERVICE,
    }[state.service]
    health = {Health.HEALTHY: TrafficHealth.OK, Health.UNHEALTHY: TrafficHealth.FAILING}.get(
        state.health, TrafficHealth.UNKNOWN
    )
    return ev.InstanceTrafficChanged(
        deployment_id,
        when,
        state.name,
        service,
        health,
        state.open_connections,
        state.requests_served,
        state.detail,
    )


class ReportingBalancer:
    """A LoadBalancer that journals each instance's state as it changes: at start, while
    BlockTraffic drains (open connections counting down) and AllowTraffic waits for health
    checks, and at each step's end. Every run strategy that drives a balancer wraps it in one
    (`reporting`), so its instances' traffic shows in the console and get-deployment."""

    def __init__(
        self,
        inner: LoadBalancer,
        deployment_id: str,
        clock: Clock,
        publish: Callable[[ev.Event], None],
    ) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.deployment_id = deployment_id
        self.clock = clock
        self.publish = publish
        self._stepping: dict[str, int] = {}  # instances in a traffic step: how many steps
        self._last: dict[str, tuple[object, ...]] = {}
        self._counts_at: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.inner.start()
        await self.sample()
        if self.kind != "command":
            self._sampler = asyncio.create_task(self._sample_loop())

    async def block(self, instance: str) -> BlockResult:
        return await self._stepped(instance, self.inner.block(instance))

    async def allow(self, instance: str) -> AllowResult:
        return await self._stepped(instance, self.inner.allow(instance))

    async def states(self) -> dict[str, InstanceState]:
        return await self.inner.states()

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        await self.inner.close()

    async def sample(self) -> None:
        """Read every instance's state and journal those that changed (quietly nothing when
        the balancer cannot be read: the step that needs it reports why)."""
        from engine.traffic.model import TrafficError

        async with self._lock:
            try:
                states = await self.inner.states()
            except (TrafficError, OSError):
                return
            now = time.monotonic()
            for name, state in states.items():
                key: tuple[object, ...] = (state.service, state.health, state.detail)
                counts = (state.open_connections, state.requests_served)
                last = self._last.get(name)
                moved = last is None or last[:3] != key
                if not moved and last is not None and last[3] != counts:
                    # a step's instance: every change; the others: now and then
                    moved = name in self._stepping or (
                        now - self._counts_at.get(name, 0.0) >= COUNTS_SECONDS
                    )
                if moved:
                    self._last[name] = (*key, counts)
                    self._counts_at[name] = now
                    self.publish(traffic_event(self.deployment_id, self.clock.now(), state))

    async def _stepped(self, instance: str, step: Awaitable[T]) -> T:
        self._stepping[instance] = self._stepping.get(instance, 0) + 1
        task = asyncio.ensure_future(step)
        try:
            await asyncio.sleep(0)  # the step sets its state (draining...) before it waits
            await self.sample()
            result = await task
        except BaseException:
            # a stop cancelled the step or the balancer failed: record where it was left
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.sample()
            raise
        finally:
            self._stepping[instance] -= 1
            if not self._stepping[instance]:
                del self._stepping[instance]
        await self.sample()
        return result

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)  # a sampling rate, not a deadline
            await self.sample()


def reporting(
    balancer: LoadBalancer | None,
    deployment_id: str,
    clock: Clock,
    publish: Callable[[ev.Event], None],
) -> LoadBalancer | None:
    """`balancer` journaling its instances' states through `publish` (None stays None)."""
    if balancer is None or isinstance(balancer, ReportingBalancer):
        return balancer
    return ReportingBalancer(balancer, deployment_id, clock, publish)


def hosted_groups(workspace: Workspace) -> list[tuple[str, str]]:
    """The (application, group) pairs whose balancer deploydeck owns (runs in a host)."""
    return [
        (app_name, group_name)
        for app_name, app in workspace.applications.items()
        for group_name, group in app.deployment_groups.items()
        if group.load_balancer is not None
        and group.load_balancer.kind in ("builtin", "haproxy")
        and group.load_balancer.socket is None
    ]


async def hosted_balancer_status(workspace: Workspace, app: str, group: str) -> HostStatus | None:
    """The group's balancer host as it reports itself; None when none runs."""
    from engine.traffic.hosted import read_status

    return await read_status(balancer_place(workspace, app, group), f"{app}/{group}")


async def start_hosted_balancer(workspace: Workspace, app: str, group: str) -> HostStatus:
    """Start the group's balancer host (when none runs) and configure it with the group's
    instances, as a deployment's start does; BalancerConfigError, TrafficError."""
    from engine.deployments.bluegreen_fleet import FleetError, Membership
    from engine.model import DeploymentType
    from engine.traffic.hosted import HostedBalancer

    instances = None
    if workspace.group(app, group).deployment_style.deployment_type is DeploymentType.BLUE_GREEN:
        try:  # the fleet the last blue/green deployment left serving, copies included
            instances = Membership(workspace, app, group).live()
        except FleetError as error:
            raise BalancerConfigError(str(error)) from None
    balancer = group_balancer(workspace, app, group, RealClock(), instances)
    if not isinstance(balancer, HostedBalancer):
        raise BalancerConfigError(
            f"the load balancer of {app}/{group} is not one deploydeck runs (kind "
            f"{balancer.kind}{', attached by socket' if balancer.kind == 'haproxy' else ''})"
        )
    await balancer.start()
    assert balancer.status is not None
    return balancer.status


async def stop_hosted_balancer(workspace: Workspace, app: str, group: str) -> bool:
    """End the group's balancer host and what it runs (an HAProxy); True when one ran."""
    from engine.traffic.host import stop_balancer_host

    return await stop_balancer_host(balancer_place(workspace, app, group))
