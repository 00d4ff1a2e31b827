"""Faults of Server blue/green deployments and the balancer they drive."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from engine import events as ev
from tests.bluegreen.conftest import (  # noqa: F401
    BlueGreenFleet,
    bg_fleet,
    deploy_to_ready,
    versions,
    waiting_in,
)
from tests.traffic.conftest import haproxy_binary, short_dir  # noqa: F401 (fixtures)


def haproxy_of(folder: Path) -> psutil.Process:
    """The HAProxy deploydeck started with its config under `folder`."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(str(folder) in part for part in cmdline) and "-db" in cmdline:
            return process
    raise AssertionError(f"no HAProxy runs with a config under {folder}")


async def test_runner_killed_while_its_haproxy_serves(
    short_dir: Path,  # noqa: F811 (before bg_fleet: removed after the fleet's servers end)
    bg_fleet: Any,  # noqa: F811
    haproxy_binary: str,  # noqa: F811
) -> None:
    """The runner is SIGKILLed while the group's HAProxy serves a blue/green deployment -> the
    balancer host and its HAProxy outlive it and blue keeps serving; the deployment shows
    interrupted."""
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
    assert set(await versions(fleet.lb_port)) == {"v1"}  # blue, through the same HAProxy
    assert haproxy.is_running()
    while not fleet.e.runner_gone(deployment):
        await asyncio.sleep(0.05)
