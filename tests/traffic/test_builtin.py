"""The built-in balancer with real instance processes and real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging

import pytest

from engine.clock import ManualClock
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.model import Health, Service, TrafficError
from tests.traffic.conftest import (
    FAST,
    SLOWISH,
    Backend,
    drain_under_a_slow_request,
    http_get,
    read_response,
    settle,
)
from tests.traffic.loadgen import run_load


@contextlib.asynccontextmanager
async def updating_under_load(fleet):
    """Three v1 backends behind the built-in balancer, a long load already running through it:
    (backends, balancer, the load's task)."""
    backends = await fleet(3)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        host, port = lb.address
        load = asyncio.create_task(run_load(host, port, 1500, concurrency=6, path=SLOWISH))
        await asyncio.sleep(0.2)
        yield backends, lb, load


async def test_rolling_update_loses_no_request_and_switches_versions(fleet):
    async with updating_under_load(fleet) as (backends, lb, load):
        for backend in backends:
            blocked = await lb.block(backend.name)
            assert blocked.drained and blocked.connections_closed == 0
            await backend.restart("v2")
            await lb.allow(backend.name)
        assert not load.done(), "the load ended before the update: make it longer"
        report = await load
        after = await run_load(*lb.address, total=30, concurrency=3)
    assert report.failures == []
    assert report.versions[0] == "v1" and "v2" in report.versions
    assert set(after.versions) == {"v2"} and after.failures == []


async def test_the_same_update_without_traffic_control_fails_requests(fleet):
    """The control for the test above: its load generator does see failures."""
    backends = await fleet(3)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        updated = asyncio.Event()
        # every response spends most of its time half sent, so each restart cuts one off
        # however slowly the machine runs; the load lasts until the update is over
        load = asyncio.create_task(
            run_load(*lb.address, 10**6, concurrency=6, path="/stream?seconds=0.3", until=updated)
        )
        for backend in backends:
            await settle(functools.partial(_has_answered, lb, backend.name))
            await backend.restart("v2")
        updated.set()
        report = await load
    assert report.failures


async def _has_answered(lb: BuiltinBalancer, name: str) -> bool:
    return (await lb.states())[name].requests_served > 0


async def test_drain_waits_for_a_slow_open_request_and_sends_new_ones_elsewhere(fleet):
    backends = await fleet(2, version="{name}")
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        drain = await drain_under_a_slow_request(lb, lb.address[1], look_after=0.1)
    assert drain.state.service is Service.DRAINING
    assert drain.status == 200 and drain.headers["x-version"] == "i1"
    assert drain.result.drained and drain.result.connections_closed == 0
    assert drain.elapsed >= 0.7  # it waited for the slow request
    assert drain.during == ["i2"] * 4


async def test_open_requests_are_closed_when_the_deregistration_delay_passes(fleet):
    backends = await fleet(2, version="{name}")
    settings = dataclasses.replace(FAST, deregistration_delay_seconds=0.3)
    async with BuiltinBalancer([b.target for b in backends], settings) as lb:
        _, port = lb.address
        slow = asyncio.create_task(http_get(port, "/slow?seconds=5"))

        async def pinned():
            return (await lb.states())["i1"].open_connections == 1

        await settle(pinned)
        result = await lb.block("i1")
        status, _, body = await slow
        states = await lb.states()
    assert not result.drained and result.connections_closed == 1
    assert 0.3 <= result.seconds < 2
    assert status == 502, body
    assert states["i1"].service is Service.OUT_OF_SERVICE and states["i1"].open_connections == 0


async def test_the_deregistration_delay_runs_on_the_injected_clock(fleet):
    backends = await fleet(2, version="{name}")
    clock = ManualClock()
    async with BuiltinBalancer([b.target for b in backends], FAST, clock) as lb:
        _, port = lb.address
        slow = asyncio.create_task(http_get(port, "/slow?seconds=30"))

        async def pinned():
            return (await lb.states())["i1"].open_connections == 1

        await settle(pinned)
        block = asyncio.create_task(lb.block("i1"))
        await asyncio.sleep(0.2)
        assert not block.done()  # 0.2 s of real time is nothing on this clock
        await clock.advance(FAST.deregistration_delay_seconds)
        result = await block
        await slow
    assert not result.drained and result.seconds == FAST.deregistration_delay_seconds


async def test_health_checks_mark_a_killed_instance_down_after_the_unhealthy_threshold(fleet):
    backends = await fleet(2, version="{name}")
    clock = ManualClock()
    assert FAST.health_check.unhealthy_threshold == 2
    async with BuiltinBalancer([b.target for b in backends], FAST, clock) as lb:
        host, port = lb.address

        async def detail(name, text):
            return (await lb.states())[name].detail == text

        await settle(lambda: detail("i1", "HTTP 200"))
        await backends[0].kill()
        await clock.advance(FAST.health_check.interval_seconds)
        await settle(lambda: detail("i1", "connection refused"))
        assert (await lb.states())["i1"].health is Health.HEALTHY  # one failure is not enough
        # Until the checks say so, connections it refuses go to the other instance.
        report = await run_load(host, port, total=20, concurrency=2)
        assert report.failures == [] and set(report.versions) == {"i2"}
        await clock.advance(FAST.health_check.interval_seconds)

        async def down():
            return (await lb.states())["i1"].health is Health.UNHEALTHY

        await settle(down)
        assert (await lb.states())["i1"].service is Service.IN_SERVICE


async def test_allow_waits_for_the_healthy_threshold_before_sending_traffic(fleet):
    backends = await fleet(2, version="{name}")
    clock = ManualClock()
    async with BuiltinBalancer([b.target for b in backends], FAST, clock) as lb:
        _, port = lb.address
        await lb.block("i1")
        allow = asyncio.create_task(lb.allow("i1"))

        async def one_pass():
            state = (await lb.states())["i1"]
            return state.detail == "HTTP 200" and state.health is Health.INITIAL

        await settle(one_pass)  # allowing checks at once: one pass of the two needed
        assert not allow.done()
        assert {(await http_get(port))[1]["x-version"] for _ in range(4)} == {"i2"}
        await clock.advance(FAST.health_check.interval_seconds)
        result = await allow
        assert result.seconds == pytest.approx(FAST.health_check.interval_seconds)
        versions = {(await http_get(port))[1]["x-version"] for _ in range(4)}
    assert versions == {"i1", "i2"}


async def test_allow_fails_after_its_timeout_for_an_instance_that_never_becomes_healthy(fleet):
    backends = await fleet(2, version="{name}")
    settings = dataclasses.replace(FAST, allow_timeout_seconds=0.5)
    async with BuiltinBalancer([b.target for b in backends], settings) as lb:
        _, port = lb.address
        await lb.block("i1")
        await backends[0].restart("i1", health_status=500)
        with pytest.raises(TrafficError) as caught:
            await lb.allow("i1")
        versions = {(await http_get(port))[1]["x-version"] for _ in range(4)}
        state = (await lb.states())["i1"]
    message = str(caught.value)
    assert "i1" in message and "0.5 s" in message and "GET /healthz" in message
    assert "HTTP 500" in message
    assert versions == {"i2"}
    assert state.service is Service.IN_SERVICE and state.health is Health.UNHEALTHY


async def test_an_idle_keep_alive_connection_moves_off_a_blocked_instance(fleet):
    backends = await fleet(2, version="{name}")
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        first = await read_response(reader)
        result = await lb.block("i1")  # the client's connection is idle: nothing to wait for
        writer.write(request)
        second = await read_response(reader)
        writer.close()
    assert first[1]["x-version"] == "i1" and second[1]["x-version"] == "i2"
    assert result.drained and result.seconds < 1


async def test_x_forwarded_for_names_the_client(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        _, plain, _ = await http_get(port)
        _, chained, _ = await http_get(port, headers="X-Forwarded-For: 10.0.0.7\r\n")
    assert plain["x-seen-forwarded-for"] == "127.0.0.1"
    assert chained["x-seen-forwarded-for"] == "10.0.0.7, 127.0.0.1"


async def test_no_instance_in_service_gives_503_and_none_answering_gives_502(fleet):
    backends = await fleet(2)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        await lb.block("i1")
        await lb.block("i2")
        unavailable = await http_get(port)
    slow_checks = dataclasses.replace(
        FAST, health_check=dataclasses.replace(FAST.health_check, interval_seconds=60)
    )
    async with BuiltinBalancer([b.target for b in backends], slow_checks) as lb:
        _, port = lb.address
        for backend in backends:
            await backend.kill()
        bad_gateway = await http_get(port)
    assert unavailable[0] == 503
    assert bad_gateway[0] == 502 and b"no instance answered" in bad_gateway[2]


async def test_request_bodies_are_relayed_with_either_framing(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        sized = await read_response(reader)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        chunked = await read_response(reader)
        writer.close()
    assert sized[2] == b"hello" and chunked[2] == b"abcdefg"


async def test_states_count_requests_and_open_connections_per_instance(fleet):
    backends = await fleet(2, version="{name}")
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        for _ in range(10):
            await http_get(port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(reader)  # an idle keep-alive connection stays open on i1
        states = await lb.states()
        writer.close()
    assert [s.requests_served for s in states.values()] == [6, 5]
    assert [s.open_connections for s in states.values()] == [1, 0]
    assert all(s.serving for s in states.values())


async def test_an_unknown_instance_is_a_clear_error(fleet):
    backends = await fleet(2)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        with pytest.raises(TrafficError, match=r"no instance 'web9'.*it has: i1, i2"):
            await lb.block("web9")


async def test_a_port_in_use_is_a_clear_error(fleet):
    backends = await fleet(1)
    with pytest.raises(TrafficError, match=f"cannot listen on 127.0.0.1:{backends[0].port}"):
        await BuiltinBalancer([backends[0].target], FAST, port=backends[0].port).start()


async def test_closing_ends_client_connections_without_logging_an_error(fleet, caplog):
    backends = await fleet(1)
    lb = BuiltinBalancer([b.target for b in backends], FAST)
    await lb.start()
    _, port = lb.address
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(reader)  # now idle on a keep-alive connection
    slow = asyncio.create_task(http_get(port, "/slow?seconds=5"))

    async def both_open():
        return (await lb.states())["i1"].open_connections == 2

    await settle(both_open)
    await lb.close()
    await asyncio.sleep(0.05)
    assert await reader.read() == b""
    writer.close()
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        assert (await slow)[0] == 502
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_http_1_0_client_gets_its_connection_closed_unless_it_asks_keep_alive(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        plain = await read_response(reader)
        assert await reader.read() == b""  # closed after the answer
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        writer.write(request)
        first = await read_response(reader)
        writer.write(request)
        second = await read_response(reader)
        writer.close()
    assert plain[1]["connection"] == "close"
    assert first[1]["connection"] == "keep-alive" and second[0] == 200


async def test_an_upgraded_connection_is_tunnelled_both_ways(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"hello\n")
        echoed = await reader.readline()
        writer.close()
    assert head.startswith(b"HTTP/1.0 101") or head.startswith(b"HTTP/1.1 101")
    assert b"Upgrade: echo" in head and echoed == b"HELLO\n"


async def test_a_request_with_ambiguous_framing_is_refused_before_any_instance_sees_it(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        status, _, _ = await read_response(reader)
        writer.close()
        served = (await lb.states())["i1"].requests_served
    assert status == 400 and served == 0


async def test_a_request_on_an_upstream_connection_the_instance_dropped_is_sent_again(fleet):
    backends = await fleet(1, version="{name}")
    # Health checks that never fail during the restart: the retry is what is tested here.
    patient = dataclasses.replace(
        FAST, health_check=dataclasses.replace(FAST.health_check, unhealthy_threshold=10_000)
    )
    async with BuiltinBalancer([b.target for b in backends], patient) as lb:
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        await read_response(reader)
        await backends[0].restart("i1-again")  # the proxy's idle connection to it is dead
        writer.write(request)
        status, headers, _ = await read_response(reader)
        writer.close()
    assert status == 200 and headers["x-version"] == "i1-again"


async def test_each_target_group_checks_its_members_with_its_own_health_check():
    """A target group given a check on a path its instance fails -> only that group's member
    goes unhealthy and gets no traffic; the other group keeps the settings' check."""
    backends = [Backend("b1", "blue"), Backend("g1", "green"), Backend("g2", "green")]
    await asyncio.gather(*(b.start() for b in backends))
    lb = BuiltinBalancer([], FAST)
    await lb.start()
    try:
        for b in backends[:2]:
            await lb.register(b.target, b.version)
        await asyncio.gather(lb.allow("b1"), lb.allow("g1"))
        # an answer later than the check's 0.5 s timeout fails it
        failing = dataclasses.replace(FAST.health_check, path="/slow?seconds=2")
        lb.set_health_check("green", failing)

        async def green_unhealthy() -> bool:
            return (await lb.states())["g1"].health is Health.UNHEALTHY

        await settle(green_unhealthy)
        states = await lb.states()
        assert (states["b1"].health, states["g1"].detail) == (
            Health.HEALTHY,
            "no answer within 0.5 s",
        )
        lb.set_weights({"blue": 50, "green": 50})
        report = await run_load(*lb.address, total=20, concurrency=2)
        assert not report.failures and set(report.versions) == {"blue"}
        await lb.register(backends[2].target, "green")  # a new member takes its group's check
        with pytest.raises(TrafficError, match=r"GET /slow\?seconds=2"):
            await lb.allow("g2")
    finally:
        await lb.close()
        await asyncio.gather(*(b.kill() for b in backends))
