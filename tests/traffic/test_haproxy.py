"""HAProxy through its runtime API: the real program from Debian, owned or attached to."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal

import pytest

from engine.traffic.haproxy import HAProxyBalancer, HAProxyRuntime
from engine.traffic.model import Health, Service, TrafficError
from tests.traffic.conftest import (
    FAST,
    SLOWISH,
    drain_under_a_slow_request,
    free_port,
    http_get,
    settle,
)
from tests.traffic.loadgen import run_load


def owned(short_dir, backends, settings=FAST):
    port = free_port()
    lb = HAProxyBalancer.owned(
        short_dir, [b.target for b in backends], ("127.0.0.1", port), settings
    )
    return lb, port


async def test_owned_haproxy_rolling_update_loses_no_request(fleet, short_dir, haproxy_binary):
    backends = await fleet(3)
    lb, port = owned(short_dir, backends)
    async with lb:
        pid = lb.owned_process.proc.pid
        assert (short_dir / "haproxy.cfg").read_text().count("    server ") == 3
        load = asyncio.create_task(run_load("127.0.0.1", port, 1500, concurrency=6, path=SLOWISH))
        await asyncio.sleep(0.2)
        for backend in backends:
            blocked = await lb.block(backend.name)
            assert blocked.drained and blocked.connections_closed == 0
            assert (await lb.states())[backend.name].service is Service.OUT_OF_SERVICE
            await backend.restart("v2")
            allowed = await lb.allow(backend.name)
            assert (await lb.states())[backend.name].serving
        assert not load.done(), "the load ended before the update: make it longer"
        report = await load
        after = await run_load("127.0.0.1", port, total=30, concurrency=3)
        _, headers, _ = await http_get(port)
    assert report.failures == []
    assert report.versions[0] == "v1" and "v2" in report.versions
    assert set(after.versions) == {"v2"}
    # rise 2 at 0.1 s: the last allow needed at least one interval after the first pass
    assert allowed.seconds >= 0.09
    assert headers["x-seen-forwarded-for"] == "127.0.0.1"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # closing stopped HAProxy's whole process group


async def test_coming_back_in_is_never_read_as_draining(fleet, short_dir, haproxy_binary):
    """Allow passes a blocked server through HAProxy's drain state on its way back in; a read
    of the states at any moment of it must not take that for a block."""
    backends = await fleet(2)
    lb, _ = owned(short_dir, backends)
    seen: list[Service] = []

    async def read_all_the_time() -> None:
        while True:
            seen.append((await lb.states())["i1"].service)
            await asyncio.sleep(0)

    async with lb:
        for _ in range(5):
            await lb.block("i1")
            seen.clear()
            reader = asyncio.create_task(read_all_the_time())
            await asyncio.sleep(0.01)
            await lb.allow("i1")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            assert Service.DRAINING not in seen, seen
            assert seen[0] is Service.OUT_OF_SERVICE and len(seen) > 3, seen


async def test_haproxy_drain_waits_for_a_slow_open_request(fleet, short_dir, haproxy_binary):
    backends = await fleet(2, version="{name}")
    lb, port = owned(short_dir, backends)
    async with lb:
        drain = await drain_under_a_slow_request(lb, port, look_after=0.15)
    assert drain.state.service is Service.DRAINING and drain.state.open_connections == 1
    assert drain.status == 200 and drain.headers["x-version"] == "i1"
    assert drain.result.drained and drain.elapsed >= 0.7
    assert drain.during == ["i2"] * 4


async def test_haproxy_closes_sessions_when_the_deregistration_delay_passes(
    fleet, short_dir, haproxy_binary
):
    backends = await fleet(2, version="{name}")
    lb, port = owned(
        short_dir, backends, dataclasses.replace(FAST, deregistration_delay_seconds=0.3)
    )
    async with lb:
        # Long enough that it is still open when the delay runs out, however loaded the machine.
        slow = asyncio.create_task(http_get(port, "/slow?seconds=6"))

        async def pinned():
            return (await lb.states())["i1"].open_connections == 1

        await settle(pinned)
        result = await lb.block("i1")
        state = (await lb.states())["i1"]
        # The cut request either fails or, as it got no answer at all, HAProxy sends it again
        # to another server (`retry-on empty-response`): never an answer from i1.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            status, headers, _ = await slow
            assert status >= 500 or headers["x-version"] == "i2"
    assert not result.drained and result.connections_closed == 1
    assert 0.3 <= result.seconds < 3
    assert state.service is Service.OUT_OF_SERVICE and state.open_connections == 0


async def test_haproxy_health_checks_mark_a_killed_instance_down(fleet, short_dir, haproxy_binary):
    backends = await fleet(2, version="{name}")
    lb, port = owned(short_dir, backends)
    async with lb:

        async def up():
            return all(s.health is Health.HEALTHY for s in (await lb.states()).values())

        await settle(up)
        await backends[0].kill()
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def down():
            return (await lb.states())["i1"].health is Health.UNHEALTHY

        report = await run_load("127.0.0.1", port, total=20, concurrency=2)
        await settle(down)
        elapsed = loop.time() - began
        state = (await lb.states())["i1"]
    assert report.failures == []  # refused connections were sent to i2
    assert state.detail.startswith("L4CON") and state.service is Service.IN_SERVICE
    check = FAST.health_check
    assert elapsed >= (check.unhealthy_threshold - 1) * check.interval_seconds


async def test_haproxy_allow_fails_after_its_timeout_for_an_unhealthy_instance(
    fleet, short_dir, haproxy_binary
):
    backends = await fleet(2, version="{name}")
    lb, port = owned(short_dir, backends, dataclasses.replace(FAST, allow_timeout_seconds=0.6))
    async with lb:
        await lb.block("i1")
        await backends[0].restart("i1", health_status=500)
        with pytest.raises(TrafficError) as caught:
            await lb.allow("i1")
        versions = {(await http_get(port))[1]["x-version"] for _ in range(4)}
    message = str(caught.value)
    assert "i1" in message and "0.6 s" in message and "L7STS 500" in message
    assert versions == {"i2"}


async def test_a_killed_owned_haproxy_is_a_clear_error(fleet, short_dir, haproxy_binary):
    backends = await fleet(2)
    lb, _ = owned(short_dir, backends)
    async with lb:
        os.killpg(lb.owned_process.proc.pid, signal.SIGKILL)
        with pytest.raises(TrafficError) as caught:
            await lb.block("i1")
    message = str(caught.value)
    assert "HAProxy deploydeck started for this group" in message
    assert "killed by signal 9" in message and str(short_dir / "haproxy.log") in message


async def test_attach_to_a_running_haproxy_by_socket_backend_and_server_names(running_haproxy):
    proc, socket, port, _ = running_haproxy
    lb = HAProxyBalancer.attach(socket, "shop", {"i1": "web-a", "i2": "web-b"}, FAST)
    async with lb:

        async def up():
            return all(s.serving for s in (await lb.states()).values())

        await settle(up)
        load = asyncio.create_task(run_load("127.0.0.1", port, 400, concurrency=4, path=SLOWISH))
        await asyncio.sleep(0.1)
        blocked = await lb.block("i1")
        during = await run_load("127.0.0.1", port, total=10, concurrency=1)
        await lb.allow("i1")
        report = await load
        states = await lb.states()
    assert blocked.drained
    assert report.failures == [] and set(report.versions) == {"i1", "i2"}
    assert set(during.versions) == {"i2"}
    assert all(s.serving for s in states.values())
    assert states["i1"].requests_served + states["i2"].requests_served >= 410
    # Closing an attached balancer leaves HAProxy running.
    assert proc.returncode is None
    assert "Name: HAProxy" in await HAProxyRuntime(socket).command("show info")


async def test_attach_names_what_is_missing(running_haproxy):
    _, socket, _, _ = running_haproxy
    with pytest.raises(TrafficError, match=r"no backend 'web'.*name a backend"):
        await HAProxyBalancer.attach(socket, "web", {"i1": "web-a"}, FAST).start()
    with pytest.raises(
        TrafficError, match=r"no server for instance i2 \(server web-c\).*web-a, web-b"
    ):
        await HAProxyBalancer.attach(socket, "shop", {"i1": "web-a", "i2": "web-c"}, FAST).start()


async def test_an_attached_haproxy_that_stopped_is_a_clear_error(running_haproxy):
    proc, socket, _, _ = running_haproxy
    lb = HAProxyBalancer.attach(socket, "shop", {"i1": "web-a", "i2": "web-b"}, FAST)
    await lb.start()
    os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
    with pytest.raises(
        TrafficError, match=r"not answering on its runtime socket .*connection refused"
    ):
        await lb.states()
    socket.unlink()
    with pytest.raises(TrafficError, match=r"socket does not exist"):
        await lb.allow("i1")


async def test_an_owned_haproxy_that_cannot_start_says_why(fleet, short_dir, haproxy_binary):
    backends = await fleet(1)
    taken = backends[0].port  # the instance listens there already
    lb = HAProxyBalancer.owned(short_dir, [backends[0].target], ("127.0.0.1", taken), FAST)
    with pytest.raises(TrafficError) as caught:
        await lb.start()
    message = str(caught.value)
    assert message.startswith("HAProxy did not start: it exited with code")
    assert "cannot bind socket" in message and f"127.0.0.1:{taken}" in message


async def test_a_missing_haproxy_is_a_clear_error(short_dir):
    lb = HAProxyBalancer.owned(
        short_dir, [], ("127.0.0.1", free_port()), FAST, binary="haproxy-not-installed"
    )
    with pytest.raises(TrafficError, match=r"HAProxy \(haproxy-not-installed\) is not installed"):
        await lb.start()


async def test_haproxy_killed_while_a_block_waits_for_draining_fails_it_clearly(
    fleet, short_dir, haproxy_binary
):
    backends = await fleet(2)
    lb, port = owned(short_dir, backends)
    async with lb:
        slow = asyncio.create_task(http_get(port, "/slow?seconds=3"))

        async def pinned():
            return (await lb.states())["i1"].open_connections == 1

        await settle(pinned)
        block = asyncio.create_task(lb.block("i1"))
        await asyncio.sleep(0.2)
        assert not block.done()
        os.killpg(lb.owned_process.proc.pid, signal.SIGKILL)
        with pytest.raises(TrafficError, match="killed by signal 9"):
            await block
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await slow
