"""The ready and termination waits of a Server blue/green deployment, stops and rollbacks:
what continue-deployment, a timeout and a stop do, and where traffic ends up."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import EngineError
from tests.bluegreen.conftest import (
    BlueGreenFleet,
    deploy_to_ready,
    ready_wait,
    terminate_after,
    until_exists,
    versions,
    waiting_in,
)

ROLLBACK_ON_STOP = {"enabled": True, "events": ["DEPLOYMENT_STOP_ON_REQUEST"]}


async def test_a_ready_wait_that_runs_out_stops_the_deployment_with_traffic_on_blue(
    bg_fleet: Any,
) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    waiting = await deploy_to_ready(fleet, 0.02)
    deployment = waiting.id
    assert waiting.status == "Ready"
    info = waiting.blue_green
    assert info is not None and info.wait_deadline is not None
    assert info.wait_action == "STOP_DEPLOYMENT"
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Stopped"
    assert final.error_code == "TIMEOUT"
    assert "ready wait" in (final.error_message or "")
    for instance in final.instances:
        events = {e.name: e.status for e in instance.events}
        assert events["AllowTraffic"] == events["BlockTraffic"] == "Skipped"
    assert final.blue_green is not None and final.blue_green.traffic_on == "Blue"
    assert final.rollback.rollback_deployment_id is None


async def test_continue_refuses_a_deployment_that_is_not_waiting(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    in_place = fleet.e.list_deployments()[0].id
    with pytest.raises(EngineError, match="only Server blue/green deployments wait"):
        await fleet.e.continue_deployment(in_place, "READY_WAIT")
    await fleet.blue_green(ready_wait())
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("READY_WAIT"))
    with pytest.raises(
        EngineError, match="is not in its TERMINATION_WAIT: it is waiting in its READY_WAIT"
    ):
        await fleet.e.continue_deployment(deployment, "TERMINATION_WAIT")
    with pytest.raises(EngineError, match="is not a wait: use READY_WAIT or TERMINATION_WAIT"):
        await fleet.e.continue_deployment(deployment, "SOON")
    result = fleet.cli(
        "continue-deployment",
        "--deployment-id",
        deployment,
        "--deployment-wait-type",
        "TERMINATION_WAIT",
    )
    assert result.returncode != 0
    assert "is not in its TERMINATION_WAIT" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    await fleet.e.continue_deployment(deployment, "READY_WAIT")
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Succeeded"
    with pytest.raises(EngineError, match="already ended"):
        await fleet.e.continue_deployment(deployment, "READY_WAIT")


async def test_a_stop_in_the_termination_wait_rolls_traffic_back_to_blue(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green(
        {
            **terminate_after(30),
        },
        auto_rollback=ROLLBACK_ON_STOP,
        deployment_config="CodeDeployDefault.AllAtOnce",
    )
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    assert set(await versions(fleet.lb_port)) == {"v2"}  # green serves through the wait
    # The rollback's last step (AfterBlockTraffic on green) holds it open for a look.
    hold = fleet.gates / "hold-AfterBlockTraffic-v2"
    hold.touch()
    await fleet.e.stop_deployment(deployment)
    stopped = await fleet.e.wait(deployment, timeout=300)
    assert stopped.status == "Stopped"
    rollback_id = (
        await fleet.until(deployment, lambda d: d.rollback.rollback_deployment_id)
    ).rollback.rollback_deployment_id
    assert rollback_id is not None
    for green in stopped.blue_green.green if stopped.blue_green else ():
        await until_exists(fleet.gates / f"at-AfterBlockTraffic-v2-{green}")
    served = await versions(fleet.lb_port)
    hold.unlink()
    assert set(served) == {"v1"}  # back on blue
    rollback = await fleet.e.wait(rollback_id, timeout=300)
    assert rollback.status == "Succeeded", rollback.error_message
    assert rollback.blue_green is not None and rollback.blue_green.traffic_on == "Blue"
    for instance in rollback.instances:
        events = {e.name: e.status for e in instance.events}
        ran = ("AllowTraffic", "BlockTraffic")[instance.name not in fleet.blue]
        assert events[ran] == "Succeeded"
        assert events["Install"] == "Skipped"
    for blue in fleet.blue:  # never terminated
        assert "ApplicationStop v1" not in fleet.events(blue)[-3:]
        assert fleet.server_running(blue)


async def test_a_stop_mid_reroute_ends_stopped_and_the_rollback_restores_blue(
    bg_fleet: Any,
) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green({}, auto_rollback=ROLLBACK_ON_STOP)
    hold = fleet.gates / "hold-AfterAllowTraffic-v2"
    hold.touch()  # the first green instance holds after it is allowed: half the traffic moved
    deployment = await fleet.deploy("v2")
    await until_exists(fleet.gates / "at-AfterAllowTraffic-v2")
    assert set(await versions(fleet.lb_port, 30)) == {"v1", "v2"}
    await fleet.e.stop_deployment(deployment)
    stopped = await fleet.e.wait(deployment, timeout=300)
    hold.unlink()
    assert stopped.status == "Stopped"
    assert stopped.error_code == "MANUAL_STOP"
    assert "(traffic is on the blue fleet)" in (stopped.error_message or "")
    green = stopped.blue_green.green if stopped.blue_green else ()
    first = stopped.instance(green[0])
    assert first is not None and first.status == "Failed"
    assert {e.name: e.status for e in first.events}["AfterAllowTraffic"] == "Failed"
    rollback_id = (
        await fleet.until(deployment, lambda d: d.rollback.rollback_deployment_id)
    ).rollback.rollback_deployment_id
    rollback = await fleet.e.wait(rollback_id, timeout=300)
    assert rollback.status == "Succeeded", rollback.error_message
    assert rollback.blue_green is not None and rollback.blue_green.traffic_on == "Blue"


async def test_continue_names_the_wait_while_installing_and_ends_the_termination_wait(
    bg_fleet: Any,
) -> None:
    """While green installs (no wait), both wait types are refused saying so; in the
    termination wait, `continue-deployment --deployment-wait-type TERMINATION_WAIT` ends blue."""
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green(
        {
            **ready_wait(30),
            **terminate_after(30),
        }
    )
    hold = fleet.gates / "hold-AfterInstall-v2"
    hold.touch()
    deployment = await fleet.deploy("v2")
    await until_exists(fleet.gates / "at-AfterInstall-v2")
    for wait_type in ("READY_WAIT", "TERMINATION_WAIT"):
        with pytest.raises(EngineError, match=f"is not in its {wait_type}: it is InProgress"):
            await fleet.e.continue_deployment(deployment, wait_type)
        result = fleet.cli(
            "continue-deployment",
            "--deployment-id",
            deployment,
            "--deployment-wait-type",
            wait_type,
        )
        assert result.returncode != 0, result.stdout
        said = result.stdout + result.stderr
        assert f"is not in its {wait_type}" in said and "DeploymentIsNotInReadyState" in said
        assert "Traceback" not in result.stderr
    hold.unlink()
    await fleet.until(deployment, waiting_in("READY_WAIT"))
    await fleet.e.continue_deployment(deployment, "READY_WAIT")
    await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    result = fleet.cli(
        "continue-deployment",
        "--deployment-id",
        deployment,
        "--deployment-wait-type",
        "TERMINATION_WAIT",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    for blue in fleet.blue:  # terminated: ApplicationStop ran, the server is gone
        assert fleet.events(blue)[-1] == "ApplicationStop v1"
        assert not fleet.server_running(blue)
