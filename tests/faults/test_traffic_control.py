"""Traffic control faults: a balancer that cannot start, an instance that never gets healthy,
the balancer host killed.
Real web instances behind the builtin balancer (tests/traffic/test_inplace_traffic.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import psutil

from engine.deployments.balancer import balancer_place
from tests.traffic.conftest import free_port, haproxy_binary, short_dir  # noqa: F401 (fixtures)
from tests.traffic.test_inplace_traffic import (
    FAST,
    web_fleet,  # noqa: F401 (the fixture)
)


async def test_balancer_port_in_use(web_fleet: Any) -> None:  # noqa: F811
    """The balancer's port is taken -> the deployment fails LOAD_BALANCER_ERROR before any hook runs, saying to choose another port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fleet = web_fleet({"kind": "builtin", "port": taken.getsockname()[1]})
        final = await fleet.engine.wait(await fleet.deploy("v1"), timeout=300)
    assert final.status == "Failed" and final.error_code == "LOAD_BALANCER_ERROR"
    assert "cannot listen on 127.0.0.1:" in (final.error_message or "")
    assert "choose another listen port" in (final.error_message or "")
    assert {i.status for i in final.instances} == {"Skipped"}
    assert not (fleet.state("i01") / "events.log").exists()


async def test_new_revision_never_healthy(web_fleet: Any) -> None:  # noqa: F811
    """The new revision never passes its health checks -> AllowTraffic fails the instance at the allow timeout with the last check's outcome, and the next batch never starts."""
    settings = {**FAST, "allow_timeout_seconds": 2}
    fleet = web_fleet(
        {"kind": "builtin", "port": free_port(), **settings}, env={"BAD_HEALTH_VERSION": "v2"}
    )
    fleet.hold.touch()
    fleet.load_started.touch()
    first = await fleet.engine.wait(await fleet.deploy("v1"), timeout=300)
    assert first.status == "Succeeded"
    final = await fleet.engine.wait(await fleet.deploy("v2"), timeout=300)
    assert final.status == "Failed"
    i01, i02 = final.instances
    failed = i01.failed_event()
    assert failed is not None and failed.name == "AllowTraffic"
    assert failed.diagnostics is not None and "500" in failed.diagnostics.message
    assert i02.status == "Skipped"
    assert fleet.events("i02")[-1] == "AfterAllowTraffic v1"  # still v1, never blocked


async def test_balancer_host_killed_mid_deployment(web_fleet: Any) -> None:  # noqa: F811
    """The group's balancer host is killed mid-deployment -> the next BlockTraffic fails the instance saying the host is not answering, naming its log; the next deployment starts a new host."""
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port})
    fleet.hold.touch()
    fleet.load_started.touch()
    first = await fleet.engine.wait(await fleet.deploy("v1"), timeout=300)
    assert first.status == "Succeeded"
    place = balancer_place(fleet.engine.workspace, "app", "fleet")
    host = place.pid()
    assert host is not None
    fleet.load_started.unlink()  # v2's first BeforeBlockTraffic waits for it
    second = await fleet.deploy("v2")
    while not (fleet.state("i01") / "events.log").read_text().endswith("BeforeBlockTraffic v1\n"):
        await asyncio.sleep(0.05)
    os.kill(host, signal.SIGKILL)
    fleet.load_started.touch()
    final = await fleet.engine.wait(second, timeout=300)
    assert final.status == "Failed"
    failed = final.instances[0].failed_event()
    assert failed is not None and failed.name == "BlockTraffic"
    assert failed.diagnostics is not None
    message = failed.diagnostics.message
    assert "the balancer host of app/fleet is not answering" in message
    assert f"Its log: {place.log}" in message
    third = await fleet.engine.wait(await fleet.deploy("v2"), timeout=300)
    assert third.status == "Succeeded", third.error_message
    assert place.pid() not in (None, host)


async def test_balancer_host_killed_with_its_haproxy_left_running(
    short_dir: Path,  # noqa: F811 (before web_fleet: removed after the fleet's servers end)
    web_fleet: Any,  # noqa: F811
    haproxy_binary: str,  # noqa: F811
) -> None:
    """The balancer host is SIGKILLed, leaving the HAProxy it ran -> the next deployment's host ends that HAProxy before starting its own, so one HAProxy serves the group."""
    lb_port = free_port()
    fleet = web_fleet({"kind": "haproxy", "port": lb_port}, short_dir)
    fleet.hold.touch()
    fleet.load_started.touch()
    first = await fleet.engine.wait(await fleet.deploy("v1"), timeout=300)
    assert first.status == "Succeeded"
    status = await fleet.engine.balancer_status("app", "fleet")
    assert status is not None and status.haproxy_pid is not None
    left = psutil.Process(status.haproxy_pid)
    os.kill(status.pid, signal.SIGKILL)
    assert left.is_running()  # in a session of its own: the kill does not reach it
    second = await fleet.engine.wait(await fleet.deploy("v2"), timeout=300)
    assert second.status == "Succeeded", second.error_message
    await asyncio.to_thread(left.wait)  # ended by the new host (bounded by pytest-timeout)
    after = await fleet.engine.balancer_status("app", "fleet")
    assert after is not None and after.haproxy_pid not in (None, status.haproxy_pid)
    configs = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(short_dir / ".deploydeck") in " ".join(p.info["cmdline"] or [])
        and "haproxy.cfg" in " ".join(p.info["cmdline"] or [])
    ]
    assert [p.pid for p in configs] == [after.haproxy_pid]
