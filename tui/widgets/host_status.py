"""One line on the long-lived host behind a deployment group: its balancer host (a Server group
whose load balancer deploydeck runs) or its ECS service's host: running (where it listens, its
pid) or not (requests to its address are refused, and what starts it). Read in the engine's
reading thread every HOST_REFRESH_SECONDS by `HostLineReader`, never on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual.dom import DOMNode
from textual.screen import Screen
from textual.timer import Timer

from engine.api import Engine, EngineError
from engine.model import ComputePlatform

HOST_REFRESH_SECONDS = 5.0  # a host starts or ends rarely: a read every few seconds is enough


def host_line(engine: Engine, app: str, group: str) -> Text | None:
    """The group's host line, None when the group has no host deploydeck runs. Made of the
    facade's reads (its async ones on a loop of this thread): call it in the reading thread."""
    try:
        application = engine.workspace.applications[app]
        config = application.deployment_groups[group]
    except KeyError:
        return None
    if application.compute_platform == ComputePlatform.ECS:
        service = (config.target or {}).get("service")
        return _service_line(engine, str(service)) if service else None
    hosted = engine.hosted_balancers()
    if (app, group) not in hosted:
        return None
    try:
        status = asyncio.run(engine.balancer_status(app, group))
    except EngineError as error:
        return Text(f"balancer: {error}", style="yellow")
    if status is None:
        balancer = config.load_balancer
        port = balancer.port if balancer is not None else None
        if balancer is None or (port is None and balancer.kind == "builtin"):
            where = "its listener"  # a builtin balancer without a port takes any free one
        else:
            where = f"{balancer.host}:{port or 8080}"  # an owned HAProxy listens on 8080
        # the command before the address: a narrow console cuts the end of the line
        name = group if [g for _, g in hosted].count(group) == 1 else f"{app}/{group}"
        return Text.assemble(
            ("balancer ○ not running:", "bold red"),
            " ",
            (f"`deploydeck balancer start {name}`", "bold"),
            f" starts it; requests to {where} are refused",
        )
    if status.address is None:
        return Text.assemble(
            ("balancer ● host running", "bold yellow"),
            f" (pid {status.pid}), no balancer yet: a deployment configures it",
        )
    host, port = status.address
    haproxy = f", HAProxy pid {status.haproxy_pid}" if status.haproxy_pid else ""
    return Text.assemble(
        ("balancer ● running:", "bold green"),
        f" {status.kind} on {host}:{port}, host pid {status.pid}{haproxy}",
    )


def _service_line(engine: Engine, service: str) -> Text:
    try:
        (status,) = asyncio.run(engine.service_status(service))
    except EngineError:  # no folder yet: never deployed
        return Text.assemble(
            (f"service {service} ○ not deployed yet:", "dim"), " its first deployment starts it"
        )
    listeners = [
        (name, listener["address"])
        for name, listener in status["listeners"].items()
        if listener is not None
    ]
    if status["hostPid"] is None:
        where = " and ".join(address for _, address in listeners) or "its listeners"
        return Text.assemble(
            (f"service {service} ○ host not running:", "bold red"),
            f" its next deployment starts it; requests to {where} are refused",
        )
    return Text.assemble(
        (f"service {service} ● host running", "bold green"),
        f" (pid {status['hostPid']}): ",
        " · ".join(f"{name} {address}" for name, address in listeners),
    )


class HostLineReader:
    """Reads a group's host line for `node` now and every HOST_REFRESH_SECONDS, in the
    engine's reading thread, and hands each line that differs from the last to `shown`."""

    def __init__(self, node: DOMNode, shown: Callable[[Text | None], None]) -> None:
        self.node = node
        self.shown = shown
        self.line: Text | None = None
        self.reads = 0  # reads finished (tests wait on it)
        self._target: tuple[Engine, str, str] | None = None
        self._timer: Timer | None = None
        self._fresh = True  # the target's first read is shown whatever it says

    def follow(self, engine: Engine | None, app: str, group: str) -> None:
        """Read `app/group`'s host from now on (at once when it changed)."""
        target = (engine, app, group) if engine is not None else None
        if target == self._target:
            return
        self._target = target
        self.line, self._fresh = None, True
        self.shown(None)  # the last target's line says nothing of this one
        if target is None:
            return
        if self._timer is None:
            self._timer = self.node.set_interval(HOST_REFRESH_SECONDS, self.read)
        self.read()

    def read(self) -> None:
        """Read the host now, unless the node's screen is hidden (it reads again once shown)."""
        screen = self.node if isinstance(self.node, Screen) else None
        if self._target is not None and (screen is None or screen.is_current or self._fresh):
            self.node.run_worker(
                self._read(self._target),
                group="host-line",
                exclusive=True,  # a new target's read replaces the old one's
                exit_on_error=False,
                description="Reading the group's host",
            )

    async def _read(self, target: tuple[Engine, str, str]) -> None:
        engine, app, group = target
        line = await engine.read_in_thread(partial(host_line, app=app, group=group))
        self.reads += 1
        if target != self._target or (not self._fresh and _same(line, self.line)):
            return
        self._fresh = False
        self.line = line
        self.shown(line)


def _same(a: Text | None, b: Text | None) -> bool:
    return (a.plain if a else None) == (b.plain if b else None)


def engine_of(node: DOMNode) -> Engine | None:
    """The console's engine (the App's), None where there is none (a test's bare app)."""
    engine = getattr(node.app, "engine", None)
    return engine if isinstance(engine, Engine) else None
