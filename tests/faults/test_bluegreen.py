"""Faults of Server blue/green deployments and the balancer a runner owns."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from tests.bluegreen.conftest import BlueGreenFleet, bg_fleet, waiting_in  # noqa: F401
from tests.traffic.conftest import haproxy_binary, short_dir  # noqa: F401 (fixtures)


def haproxy_of(folder: Path) -> psutil.Process:
    """The HAProxy deploydeck started with its config under `folder`."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(str(folder) in part for part in cmdline) and "-db" in cmdline:
            return process
    raise AssertionError(f"no HAProxy runs with a config under {folder}")


async def test_runner_killed_while_its_haproxy_serves(
    bg_fleet: Any,  # noqa: F811
    short_dir: Path,  # noqa: F811
    haproxy_binary: str,  # noqa: F811
) -> None:
    """The runner is SIGKILLed while the HAProxy it owns serves a deployment -> its watchdog
    ends HAProxy (no balancer outlives its runner); the deployment shows interrupted."""
    fleet: BlueGreenFleet = bg_fleet({"kind": "haproxy"}, folder=short_dir, run_mode="process")
    await fleet.seed()
    await fleet.blue_green(
        {
            "deployment_ready_option": {
                "action_on_timeout": "STOP_DEPLOYMENT",
                "wait_time_in_minutes": 30,
            }
        }
    )
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("READY_WAIT"))
    haproxy = haproxy_of(short_dir / ".deploydeck" / "lb")
    runner = fleet.e._runners[deployment]
    os.kill(runner.pid, signal.SIGKILL)
    await asyncio.to_thread(runner.wait)
    await asyncio.to_thread(haproxy.wait, 60)
    assert not haproxy.is_running()
    log = (short_dir / ".deploydeck" / "runs" / f"{deployment}.log").read_text()
    assert "watchdog: runner" in log and "died; ending the process groups" in log
