"""Alarms through the CLI and the runner process: a firing alarm stops create-deployment --wait
with ALARM_ACTIVE (the plain output says when the alarm changed state), get-deployment shows
each alarm's last reading, and --ignore-alarms deploys past it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.command_line import dd
from tests.engine.fleet import make_revision, write_workspace

APP = ["--application-name", "app", "--deployment-group-name", "fleet"]


def test_a_firing_alarm_stops_the_deployment_until_it_is_ignored(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 2, config="CodeDeployDefault.OneAtATime")
    document = yaml.safe_load(path.read_text())
    document["applications"]["app"]["deployment_groups"]["fleet"]["alarm_configuration"] = {
        "alarms": [{"name": "errors", "type": "command", "command": "echo 7 errors; exit 1"}]
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    revision = str(make_revision(tmp_path, "v1"))

    stopped = dd(tmp_path, "create-deployment", *APP, "--revision", revision, "--wait")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "alarm errors: OK -> ALARM: exit code 1: 7 errors" in stopped.stdout
    assert "Stopped [ALARM_ACTIVE]: alarm errors is in ALARM" in stopped.stdout
    deployment_id = stopped.stdout.split()[1]
    info = json.loads(
        dd(tmp_path, "get-deployment", "--deployment-id", deployment_id, "--output", "json").stdout
    )["deploymentInfo"]
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert [(a["name"], a["state"], a["value"]) for a in info["alarms"]] == [
        ("errors", "ALARM", 1.0)
    ]
    assert info["deploymentOverview"]["Skipped"] == 2

    ignored = dd(
        tmp_path, "create-deployment", *APP, "--revision", revision, "--ignore-alarms", "--wait"
    )
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr
    assert "alarm errors" not in ignored.stdout
