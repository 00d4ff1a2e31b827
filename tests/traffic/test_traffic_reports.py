"""The balancer's per-instance states as journal events (InstanceTrafficChanged): a real
balancer in front of real instances, wrapped as every run strategy wraps it, reports draining
with open connections counting down, out of service, and health checks passing; the plain
renderer gives each change one line."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Any

from engine import events as ev
from engine.clock import RealClock
from engine.deployments.balancer import ReportingBalancer, reporting
from engine.model import TrafficHealth, TrafficState
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.haproxy import HAProxyBalancer
from engine.traffic.model import LoadBalancer
from tests.traffic.conftest import FAST, free_port, http_get, settle
from tui.render.plain import PlainRenderer

# A drain long enough for requests of a few seconds to finish on their own.
PATIENT = replace(FAST, deregistration_delay_seconds=60.0, allow_timeout_seconds=30.0)


class Journal:
    """What a run would journal: the events the wrapped balancer publishes."""

    def __init__(self) -> None:
        self.events: list[ev.InstanceTrafficChanged] = []

    def publish(self, event: ev.Event) -> None:
        assert isinstance(event, ev.InstanceTrafficChanged)
        self.events.append(event)

    def of(self, instance: str) -> list[tuple[TrafficState, TrafficHealth, int | None]]:
        return [
            (e.state, e.health, e.open_connections) for e in self.events if e.instance == instance
        ]


async def slow_requests(port: int, seconds: list[float]) -> list[asyncio.Task[Any]]:
    return [asyncio.create_task(http_get(port, f"/slow?seconds={s}")) for s in seconds]


async def drain_and_allow(balancer: LoadBalancer, port: int) -> tuple[Journal, str]:
    """Two slow requests under way on one instance, then block it and allow it again; the
    instance blocked and what was journaled."""
    journal = Journal()
    reported = reporting(balancer, "d-TEST", RealClock(), journal.publish)
    assert isinstance(reported, ReportingBalancer)
    await reported.start()
    try:
        names = list(await reported.states())
        assert {e.instance for e in journal.events} == set(names)  # the start's snapshot
        # four requests of different lengths, two on each instance (round robin)
        requests = await slow_requests(port, [2, 3, 5, 6])

        async def both_busy() -> bool:
            states = await reported.states()
            return all(s.open_connections == 2 for s in states.values())

        await settle(both_busy)
        blocked = names[0]
        await reported.block(blocked)
        await reported.allow(blocked)
        for status, _, _ in await asyncio.gather(*requests):
            assert status == 200  # the drain let every request finish
    finally:
        await reported.close()
    return journal, blocked


def assert_drained_then_healthy(journal: Journal, instance: str) -> None:
    seen = journal.of(instance)
    draining = [n for state, _, n in seen if state is TrafficState.DRAINING]
    assert draining[0] == 2 and 1 in draining, seen  # open connections counting down
    assert draining == sorted(draining, reverse=True), seen
    after = seen[seen.index(next(s for s in seen if s[0] is TrafficState.OUT_OF_SERVICE)) :]
    assert after[0] == (TrafficState.OUT_OF_SERVICE, TrafficHealth.UNKNOWN, 0)
    assert after[-1][:2] == (TrafficState.IN_SERVICE, TrafficHealth.OK)
    assert all(state is not TrafficState.DRAINING for state, _, _ in after)


async def test_builtin_balancer_reports_the_drain_counting_down_and_the_health_checks(
    fleet: Any,
) -> None:
    backends = await fleet(2)
    port = free_port()
    balancer = BuiltinBalancer([b.target for b in backends], PATIENT, RealClock(), port=port)
    journal, blocked = await drain_and_allow(balancer, port)
    assert_drained_then_healthy(journal, blocked)
    last = [e for e in journal.events if e.instance == blocked][-1]
    assert last.requests_served is not None and last.requests_served >= 2

    lines: list[str] = []
    renderer = PlainRenderer(lines.append)
    for event in journal.events:
        renderer.render(event)
    mine = [line.split(" ", 2)[2] for line in lines if f" {blocked}: " in line]
    assert mine[0].startswith(f"{blocked}: in service, health")
    assert f"{blocked}: draining, 2 open connections, health ok" in mine
    assert f"{blocked}: draining, 1 open connection, health ok" in mine
    assert f"{blocked}: out of service" in mine
    assert mine[-1] == f"{blocked}: in service, health ok"
    assert all(a != b for a, b in itertools.pairwise(mine))  # one line per change


async def test_owned_haproxy_reports_the_drain_counting_down_and_the_health_checks(
    fleet: Any, short_dir: Any, haproxy_binary: str
) -> None:
    backends = await fleet(2)
    port = free_port()
    balancer = HAProxyBalancer.owned(
        short_dir, [b.target for b in backends], ("127.0.0.1", port), PATIENT, RealClock()
    )
    journal, blocked = await drain_and_allow(balancer, port)
    assert_drained_then_healthy(journal, blocked)
