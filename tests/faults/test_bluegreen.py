"""Faults of Server blue/green deployments and the balancer they drive."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine import events as ev
from engine.api import EngineError
from engine.model import TrafficState
from tests.bluegreen.conftest import (  # noqa: F401 (bg_fleet: a fixture)
    BlueGreenFleet,
    bg_fleet,
    deploy_to_ready,
    ready_wait,
    terminate_after,
    until_exists,
    until_listening,
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


TERMINATE_AFTER_30_MINUTES = {
    **ready_wait(30),
    **terminate_after(30),
}


async def kill_runner(fleet: BlueGreenFleet, deployment: str) -> None:
    """SIGKILL the deployment's engine process and wait until the engine sees it gone."""
    (pid,) = [
        e.event.pid for e in fleet.e.journal(deployment) if isinstance(e.event, ev.EngineAttached)
    ]
    runner = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(runner.wait, 60)
    await fleet.until(deployment, lambda d: d.interrupted)


async def resumed_to_success(fleet: BlueGreenFleet, deployment: str, wait_type: str) -> None:
    """resume-deployment carries the wait on to its recorded deadline with traffic where it
    was; continuing it then takes the deployment to Succeeded with traffic on green."""
    before = fleet.e.get_deployment(deployment)
    assert before.blue_green is not None
    traffic_on, deadline = before.blue_green.traffic_on, before.blue_green.wait_deadline
    await fleet.e.resume_deployment(deployment)

    def resumed_note(d: Any) -> bool:  # journaled once the balancer has traffic where it was
        return any(
            isinstance(e.event, ev.Note) and f"resumed in its {wait_type}" in e.event.message
            for e in fleet.e.journal(d.id)
        )

    resumed = await fleet.until(
        deployment,
        lambda d: (
            not d.interrupted
            and any(
                isinstance(e.event, ev.EngineAttached) and e.event.resumed
                for e in fleet.e.journal(d.id)
            )
            and waiting_in(wait_type)(d)
            and resumed_note(d)
        ),
    )
    assert resumed.status == before.status
    assert resumed.blue_green is not None
    assert resumed.blue_green.wait_deadline == deadline  # the same wait, not a new one
    await until_listening(fleet.lb_port)
    expected = "v2" if traffic_on == "Green" else "v1"
    assert set(await versions(fleet.lb_port)) == {expected}  # traffic where it was
    notes = [e.event for e in fleet.e.journal(deployment) if isinstance(e.event, ev.Note)]
    assert any(f"resumed in its {wait_type}" in n.message for n in notes), notes
    if wait_type == "READY_WAIT":
        await fleet.e.continue_deployment(deployment, "READY_WAIT")
        await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    await fleet.e.continue_deployment(deployment, "TERMINATION_WAIT")
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    assert final.blue_green is not None and final.blue_green.traffic_on == "Green"
    for blue in fleet.blue:  # terminated
        assert fleet.events(blue)[-1] == "ApplicationStop v1"
        assert not fleet.server_running(blue)


async def test_runner_killed_in_the_ready_wait(bg_fleet: Any) -> None:  # noqa: F811
    """The runner is SIGKILLed while green waits in Ready -> resume carries the wait on, traffic
    still on blue, to its recorded deadline; continued, the deployment succeeds."""
    fleet: BlueGreenFleet = bg_fleet(run_mode="process")
    await fleet.seed()
    await fleet.blue_green(TERMINATE_AFTER_30_MINUTES)
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("READY_WAIT"))
    await kill_runner(fleet, deployment)
    await resumed_to_success(fleet, deployment, "READY_WAIT")


async def test_runner_killed_in_the_termination_wait(bg_fleet: Any) -> None:  # noqa: F811
    """The runner is SIGKILLed while blue waits to be terminated -> resume carries the wait on
    with traffic on green; continued, blue is terminated and the deployment succeeds."""
    fleet: BlueGreenFleet = bg_fleet(run_mode="process")
    await fleet.seed()
    await fleet.blue_green(TERMINATE_AFTER_30_MINUTES)
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("READY_WAIT"))
    await fleet.e.continue_deployment(deployment, "READY_WAIT")
    await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    await kill_runner(fleet, deployment)
    await resumed_to_success(fleet, deployment, "TERMINATION_WAIT")


async def test_runner_killed_mid_reroute(bg_fleet: Any) -> None:  # noqa: F811
    """The runner is SIGKILLed while traffic moves between the fleets -> resume is refused,
    saying to stop or roll back, and changes nothing; the rollback puts traffic on blue."""
    fleet: BlueGreenFleet = bg_fleet(run_mode="process")
    await fleet.seed()
    await fleet.blue_green({})
    hold = fleet.gates / "hold-AfterAllowTraffic-v2"
    hold.touch()  # the first green instance holds after it is allowed
    deployment = await fleet.deploy("v2")
    await until_exists(fleet.gates / "at-AfterAllowTraffic-v2")
    await kill_runner(fleet, deployment)
    hold.unlink()
    before = fleet.e.get_deployment(deployment)
    journaled = len(fleet.e.journal(deployment))
    with pytest.raises(EngineError) as refused:
        await fleet.e.resume_deployment(deployment)
    message = str(refused.value)
    assert "cannot be resumed: it is a blue/green deployment interrupted while InProgress" in (
        message
    )
    assert "deploydeck stop-deployment" in message and "deploydeck rollback" in message
    result = fleet.cli("resume-deployment", "--deployment-id", deployment)
    assert result.returncode != 0 and "cannot be resumed" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    after = fleet.e.get_deployment(deployment)
    assert (after.status, after.interrupted) == (before.status, True)
    assert len(fleet.e.journal(deployment)) == journaled
    await fleet.e.stop_deployment(deployment, auto_rollback=True)
    stopped = await fleet.e.wait(deployment, timeout=300)
    assert stopped.status == "Stopped"
    rollback_id = stopped.rollback.rollback_deployment_id
    assert rollback_id is not None, stopped.rollback
    rollback = await fleet.e.wait(rollback_id, timeout=300)
    assert rollback.status == "Succeeded", rollback.error_message
    assert rollback.blue_green is not None and rollback.blue_green.traffic_on == "Blue"
    states = {t.instance: t.state for t in rollback.traffic}
    assert all(states[b] == TrafficState.IN_SERVICE for b in fleet.blue), states
    assert all(states[g] == TrafficState.OUT_OF_SERVICE for g in rollback.blue_green.green)
