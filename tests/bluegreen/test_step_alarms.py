"""Alarms are evaluated before each traffic step, not only at their interval: before each
reroute batch of a Server blue/green deployment and before each step of a Lambda traffic
shift. The alarms here poll once a day, so only the checks before a step can see them fire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bluegreen.conftest import BlueGreenFleet
from tests.functions.test_lambda_deployments import Workspace as LambdaWorkspace

DAILY = 86_400


async def test_an_alarm_firing_before_the_reroute_keeps_traffic_on_blue(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    flag = fleet.gates / "at-ValidateService-v2"  # green is installed: the alarm fires
    await fleet.blue_green(
        {},
        alarm_configuration={
            "interval_seconds": DAILY,
            "alarms": [
                {"name": "green-errors", "type": "command", "command": f"test ! -e '{flag}'"}
            ],
        },
    )
    final = await fleet.e.wait(await fleet.deploy("v2"), timeout=300)
    assert final.status == "Stopped"
    assert final.error_code == "ALARM_ACTIVE"
    assert "green-errors" in (final.error_message or "")
    assert "(traffic is on the blue fleet)" in (final.error_message or "")
    for instance in final.instances:
        events = {e.name: e.status for e in instance.events}
        assert events["AllowTraffic"] == events["BlockTraffic"] == "Skipped"
    assert final.blue_green is not None and final.blue_green.traffic_on == "Blue"


COUNTING_ALARM = (
    'n=$(cat evaluations 2>/dev/null || echo 0); echo $((n + 1)) > evaluations; [ "$n" -lt 3 ]'
)


def test_an_alarm_firing_mid_shift_stops_a_lambda_deployment_at_a_step(tmp_path: Path) -> None:
    group = {
        "alarm_configuration": {
            "interval_seconds": DAILY,
            "alarms": [{"name": "fourth-look", "type": "command", "command": COUNTING_ALARM}],
        }
    }
    workspace = LambdaWorkspace(tmp_path, group)
    revision = workspace.revision("v2", 1, 2)
    deployment = workspace.deploy(
        revision,
        "--deployment-config-name",
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
        "--time-scale",
        "120",
    )
    info = workspace.wait(deployment)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "fourth-look" in info["errorInformation"]["message"]
    assert workspace.weight() == ("1", 0.0)  # back on the original version
    weights = [e["weight"] for e in workspace.journal(deployment) if e["kind"] == "TrafficShifted"]
    assert weights == [0.1, 0.2, 0.3, 0.0]  # three steps passed their checks; then back
    assert (tmp_path / "evaluations").read_text().strip() == "4"
