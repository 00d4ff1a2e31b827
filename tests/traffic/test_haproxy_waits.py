"""How HAProxy's BlockTraffic waits: the read-backs a drain makes, against the real program.
bench/traffic_steps.py measures the time; these tests hold the behaviour that keeps it close to
the drain itself."""

from __future__ import annotations

import asyncio

from engine.traffic.haproxy import (
    POLL_MAX_SECONDS,
    POLL_MIN_SECONDS,
    HAProxyBalancer,
    poll_pause,
)
from tests.traffic.conftest import FAST, free_port, http_get, settle


def test_a_drain_reads_back_after_a_small_fraction_of_the_time_it_has_waited() -> None:
    # short drains are seen ending within 10 ms, long ones within 5 % of their time
    assert poll_pause(0.0) == POLL_MIN_SECONDS == 0.01
    assert poll_pause(1.0) == 0.05
    assert poll_pause(4.0) == 0.2
    # a five-minute deregistration delay is read back twice a second, not 6,000 times
    assert poll_pause(300.0) == POLL_MAX_SECONDS == 0.5


async def test_a_drain_reads_back_only_the_session_counts(fleet, short_dir, haproxy_binary):
    backends = await fleet(2, version="{name}")
    port = free_port()
    lb = HAProxyBalancer.owned(short_dir, [b.target for b in backends], ("127.0.0.1", port), FAST)
    async with lb:
        sent: list[str] = []
        command = lb.runtime.command

        async def recorded(line: str) -> str:
            sent.append(line)
            return await command(line)

        lb.runtime.command = recorded  # type: ignore[method-assign]
        slow = asyncio.create_task(http_get(port, "/slow?seconds=1"))  # round robin: i1

        async def pinned() -> bool:
            return (await lb.states())["i1"].open_connections == 1

        await settle(pinned)
        sent.clear()
        result = await lb.block("i1")
        status, headers, _ = await slow
    assert result.drained and status == 200 and headers["x-version"] == "i1"
    draining = sent[sent.index("set server deploydeck/i1 state drain") + 1 : -1]
    assert sent[-1] == "set server deploydeck/i1 state maint"
    # one command per read-back while the request ran, and more than one read-back
    assert len(draining) > 1 and set(draining) == {"show stat -1 4 -1"}
