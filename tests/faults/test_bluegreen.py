"""Faults of Server blue/green deployments and the balancer a runner owns."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from engine import events as ev
from tests.bluegreen.conftest import BlueGreenFleet, bg_fleet, deploy_to_ready, waiting_in  # noqa: F401
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
    waiting = await deploy_to_ready(fleet, 30)
    deployment = waiting.id
    haproxy = haproxy_of(short_dir / ".deploydeck" / "lb")
    (pid,) = [
        e.event.pid for e in fleet.e.journal(deployment) if isinstance(e.event, ev.EngineAttached)
    ]
    runner = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(runner.wait, 60)
    log_file = short_dir / ".deploydeck" / "runs" / f"{deployment}.log"
    try:
        await asyncio.to_thread(haproxy.wait, 60)
    except psutil.TimeoutExpired:
        haproxy.kill()
        raise AssertionError(
            f"HAProxy outlived its runner; the runner's log: {log_file.read_text()}"
        ) from None
    log = log_file.read_text()
    assert "watchdog: runner" in log and "died; ending the process groups" in log
