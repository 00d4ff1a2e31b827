"""Fixtures for the traffic tests: real application instances (tests/traffic/backend.py, one
process each) on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine.traffic.model import BlockResult, HealthCheck, InstanceState, Target, TrafficSettings
from tests.conftest import require_tool

BACKEND = Path(__file__).with_name("backend.py")

# Small, fast timings: checks every 0.1 s, healthy after 2 passes, unhealthy after 2 failures.
FAST = TrafficSettings(
    health_check=HealthCheck(
        path="/healthz",
        interval_seconds=0.1,
        timeout_seconds=0.5,
        healthy_threshold=2,
        unhealthy_threshold=2,
    ),
    deregistration_delay_seconds=5.0,
    allow_timeout_seconds=5.0,
)


# Answers that take a while (head first, body 10 ms later), so some are always under way on
# every instance; one cut midway cannot be retried by the balancer.
SLOWISH = "/stream?seconds=0.01"


async def settle(condition) -> None:
    """Wait (real time, bounded by pytest-timeout) until `condition()` holds."""
    while not await condition():
        await asyncio.sleep(0.01)


class Backend:
    """One instance process; it keeps its port across restarts (a new version, same place)."""

    def __init__(self, name: str, version: str, health_status: int = 200) -> None:
        self.name = name
        self.version = version
        self.health_status = health_status
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> Target:
        return Target(self.name, "127.0.0.1", self.port)

    async def start(self) -> Backend:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BACKEND),
            "--port",
            str(self.port),
            "--version",
            self.version,
            "--health-status",
            str(self.health_status),
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = (await self.proc.stdout.readline()).decode()
        assert line.startswith("listening "), f"backend {self.name} did not start: {line!r}"
        self.port = int(line.split()[1])
        return self

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def restart(self, version: str, health_status: int = 200) -> None:
        await self.kill()
        self.version = version
        self.health_status = health_status
        await self.start()


@pytest.fixture
async def fleet() -> AsyncIterator[Callable[..., asyncio.Future]]:
    """`await fleet(3)`: that many started instances i1..iN serving `version` ("{name}" gives
    each its own name as version)."""
    started: list[Backend] = []

    async def make(count: int, version: str = "v1", health_status: int = 200) -> list[Backend]:
        names = [f"i{n + 1}" for n in range(count)]
        backends = [Backend(name, version.format(name=name), health_status) for name in names]
        started.extend(backends)
        return list(await asyncio.gather(*(b.start() for b in backends)))

    yield make
    await asyncio.gather(*(b.kill() for b in started))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_get(
    port: int, path: str = "/", headers: str = "", host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
        )
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    heads = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            heads[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(heads.get("content-length", "0")))
    return status, heads, body


@dataclasses.dataclass(frozen=True)
class SlowDrain:
    """What a drain of i1 did while a slow request it served was still open."""

    state: InstanceState  # i1 a moment after the drain began
    during: list[str]  # the versions that answered four requests made during the drain
    result: BlockResult
    elapsed: float  # how long the drain took
    status: int  # the slow request's answer
    headers: dict[str, str]


async def drain_under_a_slow_request(lb, port: int, look_after: float) -> SlowDrain:
    """Open a slow request (round robin: on i1), drain i1, look at it after `look_after` s and
    send four requests meanwhile; then wait for the drain and the slow request."""
    slow = asyncio.create_task(http_get(port, "/slow?seconds=1"))

    async def pinned():
        return (await lb.states())["i1"].open_connections == 1

    await settle(pinned)
    loop = asyncio.get_running_loop()
    began = loop.time()
    block = asyncio.create_task(lb.block("i1"))
    await asyncio.sleep(look_after)
    state = (await lb.states())["i1"]
    during = [(await http_get(port))[1]["x-version"] for _ in range(4)]
    result = await block
    elapsed = loop.time() - began
    status, headers, _ = await slow
    return SlowDrain(state, during, result, elapsed, status, headers)


@pytest.fixture
def short_dir():
    """A folder with a short path: a Unix socket path holds at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ddhx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def haproxy_binary() -> str:
    return require_tool("haproxy")


ATTACHED_CONFIG = """
global
    stats socket "{socket}" mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
frontend site
    bind 127.0.0.1:{port}
    default_backend shop
backend shop
    option httpchk GET /healthz
    default-server check inter 100 rise 2 fall 2
    server web-a 127.0.0.1:{a}
    server web-b 127.0.0.1:{b}
"""


@pytest.fixture
async def running_haproxy(short_dir, haproxy_binary, fleet):
    """An HAProxy the test starts itself, as an operator's would be; deploydeck only attaches."""
    backends = await fleet(2, version="{name}")
    port = free_port()
    config = short_dir / "site.cfg"
    socket = short_dir / "site.sock"
    config.write_text(
        ATTACHED_CONFIG.format(socket=socket, port=port, a=backends[0].port, b=backends[1].port)
    )
    proc = await asyncio.create_subprocess_exec(
        haproxy_binary,
        "-db",
        "-f",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    while not socket.exists():
        await asyncio.sleep(0.02)
    yield proc, socket, port, backends
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
