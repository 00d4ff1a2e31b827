"""Fixtures for the service tests: a sample task (tests/services/sample_task.py, a real HTTP
server per process), task definitions registered under a temporary state folder, and a
runtime with fast health checks on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.services import Service, ServiceRuntime, StartPolicy, TaskDefinition, TaskDefinitions
from engine.traffic.model import HealthCheck, TrafficSettings

SAMPLE = Path(__file__).with_name("sample_task.py")

# Listener health checks every 0.05 s, healthy after 2 passes; drains wait at most 10 s.
FAST_TRAFFIC = TrafficSettings(
    health_check=HealthCheck(
        path="/healthz",
        interval_seconds=0.05,
        timeout_seconds=1.0,
        healthy_threshold=2,
        unhealthy_threshold=2,
    ),
    deregistration_delay_seconds=10.0,
    allow_timeout_seconds=20.0,
)
FAST_START = StartPolicy(timeout=20.0, interval=0.05, restart_delay=0.05, stop_grace=2.0)


def register(definitions: TaskDefinitions, count: int = 3, **environment: str) -> TaskDefinition:
    """The next revision of the sample task, `count` tasks."""
    return definitions.register(
        "web",
        [sys.executable, str(SAMPLE)],
        environment=environment,
        container_port=8080,
        desired_count=count,
        health_check_path="/healthz",
    )


@pytest.fixture
def definitions(tmp_path: Path) -> TaskDefinitions:
    return TaskDefinitions(tmp_path / "state")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    """A started runtime of service `web` with production and test listeners on free ports."""
    service = Service("web", production_port=0, test_port=0)
    rt = ServiceRuntime(service, tmp_path / "state", traffic=FAST_TRAFFIC, policy=FAST_START)
    await rt.start()
    yield rt
    await rt.close()


def living_in_group(pgid: int) -> list[int]:
    """Processes (not zombies) in process group `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


async def get(port: int, path: str = "/") -> tuple[int, str, str]:
    """One request on a fresh connection: (status, X-Revision, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:])
    )
    return int(lines[0].split()[1]), headers.get("x-revision", ""), body.decode()


async def settle(condition, interval: float = 0.02) -> None:
    """Wait (real time, bounded by pytest-timeout) until `condition()` holds."""
    while not condition():
        await asyncio.sleep(interval)
