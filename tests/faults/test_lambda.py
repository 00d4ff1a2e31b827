"""Faults of Lambda deployments: hooks that never report or report Failed, stops and
rollbacks mid-shift, bad time scales and hook timeouts. Real deploydeck processes, real function
workers, hooks reporting over HTTP to the run's gateway."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.command_line import create_deployment
from tests.functions.test_lambda_deployments import (
    Workspace,
    alias,
    dd,
    ok,
    publish,
    wait_for,
)


def test_a_hook_that_never_reports_fails_at_its_timeout(tmp_path: Path) -> None:
    """a BeforeAllowTraffic hook that never reports -> Failed (TIMEOUT) at the group's hook
    timeout, on the deployment's scaled clock; the alias never moved"""
    workspace = Workspace(tmp_path, {"target": {"hook_timeout_seconds": 120}})
    calls = workspace.hook("pre", "silent")
    revision = workspace.revision("v2", 1, 2, BeforeAllowTraffic="pre")
    deployment = workspace.deploy(revision, "--time-scale", "60")
    info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "TIMEOUT"
    assert "pre did not report within 120 s" in info["errorInformation"]["message"]
    assert calls.read_text().count(deployment) == 1
    assert alias(workspace) == {"1": 1.0}
    journal = workspace.journal(deployment)
    started = next(e["time"] for e in journal if e.get("event") == "BeforeAllowTraffic")
    failed = next(
        e["time"]
        for e in journal
        if e["kind"] == "DeploymentStatusChanged" and e["status"] == "Failed"
    )
    assert 120 <= failed - started < 180  # the timeout on the deployment's scaled clock
    assert not any(e["kind"] == "TrafficShifted" for e in journal)


def test_a_hook_reporting_failed_puts_the_alias_back_and_rolls_back(tmp_path: Path) -> None:
    """an AfterAllowTraffic hook reports Failed -> the deployment fails, the alias is back on its
    original version at once, and the automatic rollback redeploys the last good revision"""
    group = {"auto_rollback": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]}}
    workspace = Workspace(tmp_path, group)
    workspace.hook("pre")
    workspace.hook("post", "Failed")
    first = workspace.deploy(workspace.revision("v2", 1, 2, BeforeAllowTraffic="pre"))
    assert workspace.wait(first)["status"] == "Succeeded"
    assert alias(workspace) == {"2": 1.0}
    publish(workspace, "3")
    revision = workspace.revision("v3", 2, 3, AfterAllowTraffic="post")
    deployment = workspace.deploy(revision, "--time-scale", "60")
    info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert info["targetVersionWeight"] == 0.0
    weights = [e["weight"] for e in workspace.journal(deployment) if e["kind"] == "TrafficShifted"]
    assert weights == [1.0, 0.0]  # all on 3, then at once back on 2
    wait_for(lambda: "rollbackDeploymentId" in workspace.get(deployment).get("rollbackInfo", {}))
    rollback = workspace.get(deployment)["rollbackInfo"]["rollbackDeploymentId"]
    assert workspace.wait(rollback)["status"] == "Succeeded"
    assert alias(workspace) == {"2": 1.0}


@pytest.mark.parametrize("verb", ["stop-deployment", "rollback"])
def test_stopping_mid_shift_puts_the_alias_back_at_once(tmp_path: Path, verb: str) -> None:
    """a stop (or a rollback) while the alias is part-way to the target -> the alias serves
    only the original version again at once; the deployment ends Stopped"""
    workspace = Workspace(tmp_path)
    first = workspace.deploy(workspace.revision("v2", 1, 2))
    assert workspace.wait(first)["status"] == "Succeeded"
    publish(workspace, "3")
    deployment = workspace.deploy(
        workspace.revision("v3", 2, 3),
        "--deployment-config-name",
        "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
        "--time-scale",
        "4",  # 15 s between steps: the stop lands mid-shift even on a loaded machine
    )
    wait_for(lambda: alias(workspace).get("3", 0.0) >= 0.1)
    assert workspace.get(deployment)["targetVersionWeight"] >= 0.1
    ok(workspace.root, verb, "--deployment-id", deployment)
    info = workspace.wait(deployment)
    assert info["status"] == "Stopped"
    assert alias(workspace) == {"2": 1.0}
    assert info["targetVersionWeight"] == 0.0
    shifts = [e["weight"] for e in workspace.journal(deployment) if e["kind"] == "TrafficShifted"]
    assert shifts[-1] == 0.0 and max(shifts) < 1.0
    if verb == "rollback":
        wait_for(
            lambda: "rollbackDeploymentId" in workspace.get(deployment).get("rollbackInfo", {})
        )
        rollback = workspace.get(deployment)["rollbackInfo"]["rollbackDeploymentId"]
        assert workspace.wait(rollback)["status"] == "Succeeded"
        assert alias(workspace) == {"2": 1.0}
    out = ok(workspace.root, "get-deployment", "--deployment-id", deployment)
    assert "time x4" in out
    plain = ok(workspace.root, "journal", "--deployment-id", deployment)
    assert "time x4" in plain and "hello:live: 0% to version 3, 100% to version 2" in plain


@pytest.mark.parametrize("scale", ["0", "-60"])
def test_a_time_scale_that_is_not_positive_is_refused(tmp_path: Path, scale: str) -> None:
    """--time-scale 0 or below -> refused with what to give; nothing is recorded"""
    workspace = Workspace(tmp_path)
    result = dd(
        workspace.root,
        *create_deployment(str(workspace.revision("v2", 1, 2)), application="fn", group="live"),
        f"--time-scale={scale}",
    )
    assert result.returncode == 1
    assert "time scale" in result.stdout and "positive number" in result.stdout
    assert "Traceback" not in result.stderr
    assert ok(workspace.root, "list-deployments", "--output", "json").count("deploymentId") == 0


def test_a_bad_hook_timeout_fails_the_deployment_naming_the_key(tmp_path: Path) -> None:
    """target.hook_timeout_seconds not a positive number -> the deployment fails saying which
    key and what to write; the alias never moves"""
    workspace = Workspace(tmp_path, {"target": {"hook_timeout_seconds": "soon"}})
    workspace.hook("pre")
    deployment = workspace.deploy(workspace.revision("v2", 1, 2, BeforeAllowTraffic="pre"))
    info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert "target.hook_timeout_seconds is 'soon'" in info["errorInformation"]["message"]
    assert alias(workspace) == {"1": 1.0}


def test_a_runner_killed_mid_shift_is_resumed_into_the_original_version(tmp_path: Path) -> None:
    """the runner SIGKILLed while the alias is split -> resume-deployment puts the alias back on
    the version the shift started from and fails the deployment, saying so"""
    workspace = Workspace(tmp_path)
    deployment = workspace.deploy(
        workspace.revision("v2", 1, 2),
        "--deployment-config-name",
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
        "--time-scale",
        "60",
    )
    wait_for(lambda: alias(workspace).get("2", 0.0) >= 0.2)
    (attached,) = [e for e in workspace.journal(deployment) if e["kind"] == "EngineAttached"]
    os.kill(attached["pid"], signal.SIGKILL)
    wait_for(lambda: workspace.get(deployment).get("interrupted"))
    assert 0.0 < alias(workspace).get("2", 0.0) < 1.0  # left split by the dead runner
    ok(workspace.root, "resume-deployment", "--deployment-id", deployment)
    info = workspace.wait(deployment)
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "INTERNAL_ERROR"
    assert "put back on version 1" in info["errorInformation"]["message"]
    assert alias(workspace) == {"1": 1.0}
    events = ok(workspace.root, "get-deployment", "--deployment-id", deployment, "--output", "json")
    (target,) = json.loads(events)["instances"]
    statuses = {e["lifecycleEventName"]: e["status"] for e in target["lifecycleEvents"]}
    assert statuses == {
        "Start": "Succeeded",
        "BeforeAllowTraffic": "Skipped",
        "AllowTraffic": "Failed",
        "AfterAllowTraffic": "Skipped",
        "End": "Skipped",
    }
