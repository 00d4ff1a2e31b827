"""The built-in balancer's idle timeout on client connections: a connection waiting for its
next request is closed after `idle_timeout`, one serving a request never is."""

from __future__ import annotations

import asyncio

from engine.traffic.builtin import BuiltinBalancer
from tests.traffic.conftest import FAST, read_response

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_an_idle_client_connection_is_closed_after_the_idle_timeout(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST, idle_timeout=0.3) as lb:
        reader, writer = await asyncio.open_connection(*lb.address)
        writer.write(REQUEST)
        status, _, _ = await read_response(reader)
        closed = await reader.read()  # waits until the balancer closes the connection
        writer.close()
    assert status == 200 and closed == b""


async def test_a_request_slower_than_the_idle_timeout_is_answered(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST, idle_timeout=0.2) as lb:
        reader, writer = await asyncio.open_connection(*lb.address)
        writer.write(b"GET /slow?seconds=0.8 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow = await read_response(reader)
        writer.write(REQUEST)  # at once: the connection is still open
        then = await read_response(reader)
        writer.close()
    assert slow[0] == 200 and then[0] == 200


async def test_the_idle_timeout_counts_from_the_last_request_not_the_connection(fleet):
    backends = await fleet(1)
    async with BuiltinBalancer([b.target for b in backends], FAST, idle_timeout=2.0) as lb:
        reader, writer = await asyncio.open_connection(*lb.address)
        statuses = []
        for _ in range(6):  # 3 s in all on one connection, 0.5 s between requests
            writer.write(REQUEST)
            statuses.append((await read_response(reader))[0])
            await asyncio.sleep(0.5)
        writer.close()
    assert statuses == [200] * 6
