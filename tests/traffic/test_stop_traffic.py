"""Stop and rollback keep traffic safe, against a real HAProxy the test runs itself (as an
operator would; deploydeck attaches by its admin socket), so what a stop leaves in and out of
service can be read back from HAProxy after the run: docs/traffic.md "Stop and rollback"."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.traffic.command import BalancerCommands, CommandBalancer
from engine.traffic.model import Service, Target
from tests.cli.test_local_cli import DEPLOYDECK, REPO
from tests.traffic.conftest import ATTACHED_CONFIG, BACKEND, FAST, free_port, http_get
from tests.traffic.hactl import ask
from tests.traffic.test_inplace_traffic import (
    WebFleet,
    event_status,
    notes,
    until_exists,
    web_fleet,  # noqa: F401  (the fixture)
)

SERVERS = {"i01": "web-a", "i02": "web-b"}
MINIMUM_HEALTHY = 1  # HalfAtATime of two instances


class AttachedHAProxy:
    """An HAProxy in front of a WebFleet's two instances, started by the test."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "site.sock"
        self.config = folder / "site.cfg"
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    def write_config(self, ports: dict[str, int]) -> None:
        self.config.write_text(
            ATTACHED_CONFIG.format(
                socket=self.socket, port=self.port, a=ports["i01"], b=ports["i02"]
            )
        )

    async def start(self, binary: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "-db",
            "-f",
            str(self.config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        while not self.socket.exists():
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    def _column(self, column: str) -> dict[str, str]:
        rows = csv.DictReader(io.StringIO(ask(str(self.socket), "show stat -1 4 -1").lstrip("# ")))
        by_server = {r["svname"]: r[column] for r in rows if r["pxname"] == "shop"}
        return {name: by_server[server] for name, server in SERVERS.items()}

    def status(self) -> dict[str, str]:
        """Each instance's server status: UP, DOWN, DRAIN, MAINT (HAProxy's words)."""
        return self._column("status")

    def sessions(self) -> dict[str, int]:
        """Each instance's open sessions."""
        return {name: int(value) for name, value in self._column("scur").items()}

    def serving(self) -> list[str]:
        return [name for name, status in self.status().items() if status == "UP"]

    async def until(self, instance: str, status: str) -> None:
        while self.status()[instance] != status:
            await asyncio.sleep(0.05)

    def balancer(self) -> dict[str, Any]:
        return {
            "kind": "haproxy",
            "socket": str(self.socket),
            "backend": "shop",
            "servers": SERVERS,
        }


@pytest.fixture
async def attached(
    short_dir: Path,  # before web_fleet: removed after the fleet's servers are ended
    web_fleet: Any,  # noqa: F811
    haproxy_binary: str,
) -> AsyncIterator[Any]:
    """`await attached(**WebFleet options)`: a fleet with v1 deployed through the attached
    HAProxy, every instance UP."""
    proxies: list[AttachedHAProxy] = []

    async def make(**options: Any) -> tuple[WebFleet, AttachedHAProxy]:
        proxy = AttachedHAProxy(short_dir)
        proxies.append(proxy)
        fleet = web_fleet(proxy.balancer(), short_dir, **options)
        proxy.write_config(fleet.ports)
        await proxy.start(haproxy_binary)
        fleet.hold.touch()
        fleet.load_started.touch()
        first = await fleet.deploy("v1")
        assert (await fleet.engine.wait(first, timeout=300)).status == "Succeeded"
        await proxy.until("i01", "UP")
        await proxy.until("i02", "UP")
        return fleet, proxy

    yield make
    for proxy in proxies:
        await proxy.stop()


async def cli(fleet: WebFleet, *args: str) -> str:
    """Run deploydeck in the fleet's folder (the test's engine runs the deployment inline and
    sees the stop the command records); its output, joined on one line."""
    proc = await asyncio.create_subprocess_exec(
        *DEPLOYDECK,
        *args,
        cwd=fleet.folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "500"},
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert not err, err.decode()
    return " ".join(out.decode().split())


def journaled(fleet: WebFleet, deployment_id: str) -> dict[str, str]:
    """Each instance's last balancer state as the deployment journaled it."""
    return {
        t.instance: f"{t.state} {t.health}"
        for t in fleet.engine.get_deployment(deployment_id).traffic
    }


async def versions_through(proxy: AttachedHAProxy, count: int = 20) -> set[str]:
    """The versions `count` requests through the frontend were answered by; all must succeed."""
    seen = set()
    for _ in range(count):
        status, _, body = await http_get(proxy.port, "/")
        assert status == 200
        seen.add(body.decode().strip())
    return seen


async def test_a_stop_mid_drain_puts_the_instance_back_in_the_attached_haproxy(
    attached: Any,
) -> None:
    fleet, proxy = await attached()
    fleet.load_started.unlink()  # i01's BeforeBlockTraffic waits for it
    second = await fleet.deploy("v2")
    slow = [asyncio.create_task(http_get(proxy.port, "/slow?seconds=20")) for _ in range(4)]
    while min(proxy.sessions().values()) < 1:  # slow requests open on both before the block
        await asyncio.sleep(0.05)
    fleet.load_started.touch()
    await proxy.until("i01", "DRAIN")
    assert event_status(fleet, second, "i01", "BlockTraffic") == "InProgress"
    said = await cli(
        fleet, "stop-deployment", "--deployment-id", second, "--no-auto-rollback-enabled"
    )
    assert "Traffic: 2 of 2 instances in service after the stop (minimum healthy 1" in said
    assert "i01 goes back in service once healthy: it was only drained." in said
    final = await fleet.engine.wait(second, timeout=300)
    assert final.status == "Stopped"
    await proxy.until("i01", "UP")  # allowed again: nothing of v2 touched it
    assert proxy.serving() == ["i01", "i02"]
    assert journaled(fleet, second) == {"i01": "in_service ok", "i02": "in_service ok"}
    assert fleet.events("i01")[-1] == "BeforeBlockTraffic v1"
    assert any(
        "i01 was stopped before any install event: back in service" in n
        for n in notes(fleet, second)
    )
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)


async def test_a_stop_mid_allow_leaves_the_instance_registered_but_unserved_until_healthy(
    attached: Any,
) -> None:
    fleet, proxy = await attached(env={"BAD_HEALTH_VERSION": "v2"})
    second = await fleet.deploy("v2")
    while event_status(fleet, second, "i01", "AllowTraffic") != "InProgress":
        await asyncio.sleep(0.05)
    await proxy.until("i01", "DOWN")  # registered again, waiting for its checks to pass
    said = await cli(fleet, "stop-deployment", "--deployment-id", second)
    assert "i01 stays registered and serves once its health checks pass." in said
    final = await fleet.engine.wait(second, timeout=300)
    assert final.status == "Stopped"
    # registered (not in maintenance) but failing its checks: it gets no request
    await proxy.until("i01", "DOWN")
    assert proxy.serving() == ["i02"] and len(proxy.serving()) >= MINIMUM_HEALTHY
    assert await versions_through(proxy) == {"v1"}
    # once it answers its checks it takes traffic, with no deployment needed
    pid = int((fleet.state("i01") / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    healthy = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BACKEND),
        "--port",
        str(fleet.ports["i01"]),
        "--version",
        "v2",
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await proxy.until("i01", "UP")
        while "v2" not in await versions_through(proxy):
            await asyncio.sleep(0.05)
    finally:
        os.killpg(healthy.pid, signal.SIGKILL)
        await healthy.wait()


async def test_rollback_after_a_stop_mid_install_restores_rotation(attached: Any) -> None:
    fleet, proxy = await attached()
    (fleet.state("i01") / "hang-v2").touch()
    second = await fleet.deploy("v2")
    while event_status(fleet, second, "i01", "ApplicationStart") != "InProgress":
        await asyncio.sleep(0.05)
    assert proxy.status()["i01"] == "MAINT"
    said = await cli(
        fleet,
        "stop-deployment",
        "--deployment-id",
        second,
        "--auto-rollback-enabled",
        "--output",
        "json",
    )
    answer = json.loads(said)
    assert answer["status"] == "Pending"
    assert answer["trafficMessage"] == (
        "Traffic: 1 of 2 instances in service after the stop (minimum healthy 1: a stop never "
        "goes below it). i01 stays out of service: its install is ended midway, so it serves "
        "again only once a deployment's AllowTraffic finds it healthy (the rollback's, which "
        "follows)."
    )
    stopped = await fleet.engine.wait(second, timeout=300)
    assert stopped.status == "Stopped"
    # its install was ended midway: out of service, and the group keeps its minimum
    assert proxy.status()["i01"] == "MAINT"
    assert len(proxy.serving()) >= MINIMUM_HEALTHY
    assert journaled(fleet, second) == {"i01": "out_of_service unknown", "i02": "in_service ok"}
    while not (stopped := fleet.engine.get_deployment(second)).rollback.rollback_deployment_id:
        await asyncio.sleep(0.05)
    rollback_id = stopped.rollback.rollback_deployment_id
    rollback = await fleet.engine.wait(rollback_id, timeout=300)
    assert rollback.status == "Succeeded", rollback.error_message
    assert proxy.serving() == ["i01", "i02"]  # back in rotation
    assert journaled(fleet, rollback_id)["i01"] == "in_service ok"
    while await versions_through(proxy) != {"v1"}:
        await asyncio.sleep(0.05)
    await until_exists(fleet.state("i01") / "allowed-v1")


async def test_a_stop_during_allow_traffics_registration_leaves_the_instance_registered(
    tmp_path: Path,
) -> None:
    """The allow command is under way when the stop cancels AllowTraffic: it runs to its end
    (the instance is registered, as the stop rule says), then the cancellation goes on."""
    started, go, registered = (tmp_path / n for n in ("started", "go", "registered"))
    commands = BalancerCommands(
        block="true",
        allow=f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; touch {registered}",
        health="true",
        timeout_seconds=60,
    )
    lb = CommandBalancer([Target("web-1", "127.0.0.1", 8081)], commands, FAST)
    async with lb:
        await lb.block("web-1")
        allow = asyncio.create_task(lb.allow("web-1"))
        await until_exists(started)
        allow.cancel()
        for _ in range(5):  # the cancellation is delivered while the command still runs
            await asyncio.sleep(0)
        assert not allow.done()
        go.touch()
        with pytest.raises(asyncio.CancelledError):
            await allow
        assert registered.exists()
        assert (await lb.states())["web-1"].service is Service.IN_SERVICE
