"""The built-in balancer's weights between target groups (what an ECS service's listeners
use), with real instance processes (tests/traffic/backend.py) and real HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.model import TrafficError
from tests.traffic.conftest import FAST, Backend, read_response
from tests.traffic.loadgen import run_load


@pytest.fixture
async def groups() -> AsyncIterator[list[Backend]]:
    """Four instances: b1, b2 (version "blue") and g1, g2 (version "green")."""
    backends = [Backend(n, "blue") for n in ("b1", "b2")] + [
        Backend(n, "green") for n in ("g1", "g2")
    ]
    await asyncio.gather(*(b.start() for b in backends))
    yield backends
    await asyncio.gather(*(b.kill() for b in backends))


async def weighted(backends: list[Backend]) -> BuiltinBalancer:
    lb = BuiltinBalancer([], FAST)
    await lb.start()
    for b in backends:
        await lb.register(b.target, b.version)
    await asyncio.gather(*(lb.allow(b.name) for b in backends))
    return lb


async def test_requests_split_between_target_groups_exactly_by_weight(groups):
    lb = await weighted(groups)
    try:
        host, port = lb.address
        for blue, green in ((90, 10), (10, 90), (63, 37)):
            lb.set_weights({"blue": blue, "green": green})
            report = await run_load(host, port, total=100, concurrency=4)
            assert not report.failures
            assert Counter(report.versions) == {"blue": blue, "green": green}
        served = {n: s.requests_served for n, s in (await lb.states()).items()}
        # Within a group a connection keeps its instance; new ones go round robin.
        assert all(served[n] > 0 for n in ("b1", "b2", "g1", "g2"))
        assert served["b1"] + served["b2"] == 163 and served["g1"] + served["g2"] == 137
        assert lb.weights == {"blue": 63, "green": 37}
        assert lb.groups() == {"b1": "blue", "b2": "blue", "g1": "green", "g2": "green"}
    finally:
        await lb.close()


async def test_a_group_at_weight_zero_gets_nothing_and_a_keep_alive_client_moves(groups):
    lb = await weighted(groups)
    try:
        lb.set_weights({"blue": 100, "green": 0})
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        versions = []
        for weights in ({"blue": 100}, {"green": 100}, {"blue": 100, "green": 0}):
            lb.set_weights(weights)
            for _ in range(4):
                writer.write(request)
                status, headers, _ = await read_response(reader)
                assert status == 200
                versions.append(headers["x-version"])
        writer.close()
        assert versions == ["blue"] * 4 + ["green"] * 4 + ["blue"] * 4
    finally:
        await lb.close()


async def test_a_weighted_group_with_no_healthy_instance_sends_its_share_to_the_other(groups):
    lb = await weighted(groups)
    try:
        lb.set_weights({"blue": 50, "green": 50})
        for b in groups[2:]:
            await lb.block(b.name)
        host, port = lb.address
        report = await run_load(host, port, total=40, concurrency=2)
        assert not report.failures and set(report.versions) == {"blue"}
        lb.set_weights({"green": 100})  # none serving there, and no other group weighted
        report = await run_load(host, port, total=4, concurrency=1)
        assert report.statuses == {503: 4}
    finally:
        await lb.close()


async def test_deregister_drains_then_removes_the_instance(groups):
    lb = await weighted(groups)
    try:
        lb.set_weights({"blue": 100})
        _, port = lb.address
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream?seconds=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        while not any(s.open_connections for s in (await lb.states()).values()):
            await asyncio.sleep(0.01)
        busy = next(n for n, s in (await lb.states()).items() if s.open_connections)
        result = await lb.deregister(busy)
        assert result.drained and result.connections_closed == 0
        status, _, _ = await read_response(reader)
        writer.close()
        assert status == 200
        assert busy not in await lb.states() and busy not in lb.groups()
        with pytest.raises(TrafficError, match=f"no instance '{busy}'"):
            await lb.allow(busy)
    finally:
        await lb.close()


async def test_bad_weights_are_refused_and_change_nothing(groups):
    lb = await weighted(groups[:1])
    try:
        lb.set_weights({"blue": 100})
        for bad, words in (
            ({"blue": -1}, "whole number of 0 or more"),
            ({"blue": 2.5}, "whole number of 0 or more"),
            ({"blue": True}, "whole number of 0 or more"),
            ({"blue": 0, "green": 0}, "at least one target group"),
            ({}, "at least one target group"),
        ):
            with pytest.raises(TrafficError, match=words):
                lb.set_weights(bad)
        assert lb.weights == {"blue": 100}
        with pytest.raises(TrafficError, match="already behind the balancer"):
            await lb.register(groups[0].target, "blue")
    finally:
        await lb.close()
