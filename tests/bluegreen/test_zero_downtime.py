"""The zero-downtime proof for Server blue/green: steady requests through the group's balancer
(the built-in proxy, then a real HAProxy) while a blue/green deployment installs v2 on copied
instances, waits in Ready until the CLI continues it, moves traffic and terminates blue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.bluegreen.conftest import (
    BlueGreenFleet,
    ready_wait,
    terminate_after,
    until_listening,
    waiting_in,
)
from tests.traffic.conftest import haproxy_binary, short_dir  # noqa: F401 (fixtures)
from tests.traffic.loadgen import run_load

# Each request's head comes at once and its body 0.2 s later: one cut by a server that stops
# fails, and the balancer cannot retry it.
LOAD: dict[str, Any] = {
    "total": 100_000,
    "concurrency": 4,
    "pause": 0.02,
    "path": "/stream?seconds=0.2",
}
WAITS = {
    **ready_wait(30),
    **terminate_after(30),
}


async def blue_green_under_load(fleet: BlueGreenFleet) -> None:
    await fleet.seed()
    await fleet.blue_green(WAITS)
    deployment = await fleet.deploy("v2")
    await until_listening(fleet.lb_port)
    done = asyncio.Event()
    load = asyncio.create_task(run_load("127.0.0.1", fleet.lb_port, until=done, **LOAD))
    ready = await fleet.until(deployment, lambda d: d.status == "Ready")
    assert {i.status for i in ready.instances if i.name in ready.blue_green.green} == {"Ready"}
    continued = await asyncio.to_thread(
        fleet.cli, "continue-deployment", "--deployment-id", deployment
    )
    assert continued.returncode == 0, continued.stderr
    assert continued.stdout.strip() == f"{deployment}: READY_WAIT continued"
    waiting = await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    assert waiting.blue_green is not None and waiting.blue_green.traffic_on == "Green"
    await asyncio.sleep(2.0)  # traffic keeps flowing to green through the wait
    done.set()
    report = await load
    await fleet.e.continue_deployment(deployment, "TERMINATION_WAIT")
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    assert report.failures == []
    assert report.ok > 30
    assert report.versions[0] == "v1"
    assert set(report.versions[-20:]) == {"v2"}
    for blue in fleet.blue:  # terminated: ApplicationStop (v1's script) stopped its server
        assert fleet.events(blue)[-3:] == [
            "BeforeBlockTraffic v1",
            "AfterBlockTraffic v1",
            "ApplicationStop v1",
        ]
        assert not fleet.server_running(blue)
    api = final.to_api()["blueGreenDeploymentInfo"]
    assert api["trafficOn"] == "Green"
    assert api["instanceTerminationWaitTimeStarted"] is True
    assert api["blueInstances"] == fleet.blue
    assert api["greenInstances"] == [f"{b}-{deployment}" for b in fleet.blue]


async def test_blue_green_through_the_builtin_balancer_drops_no_request(bg_fleet: Any) -> None:
    await blue_green_under_load(bg_fleet())


async def test_blue_green_through_an_owned_haproxy_drops_no_request(
    short_dir: Path,  # noqa: F811 (before bg_fleet: removed after the fleet's servers end)
    bg_fleet: Any,
    haproxy_binary: str,  # noqa: F811
) -> None:
    await blue_green_under_load(bg_fleet({"kind": "haproxy"}, folder=short_dir))


@pytest.mark.parametrize("kind", ["builtin"])
async def test_green_takes_no_traffic_before_the_reroute(bg_fleet: Any, kind: str) -> None:
    """While green is installed and waits in Ready, every answer still comes from blue."""
    fleet: BlueGreenFleet = bg_fleet({"kind": kind})
    await fleet.seed()
    await fleet.blue_green(WAITS)
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, lambda d: d.status == "Ready")
    report = await run_load("127.0.0.1", fleet.lb_port, total=40, concurrency=2)
    assert report.failures == []
    assert set(report.versions) == {"v1"}
    await fleet.e.stop_deployment(deployment, auto_rollback=False)
    assert (await fleet.e.wait(deployment, timeout=300)).status == "Stopped"
