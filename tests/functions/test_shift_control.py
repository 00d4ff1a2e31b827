"""Operator control of a Lambda deployment's traffic shift, as a user runs it: real deploydeck
processes and function workers, the alias shifted on a scaled clock, the verbs
hold-traffic-shift, resume-traffic-shift, skip-traffic-wait and promote-traffic-shift
reaching the runner through the journal."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.functions.test_lambda_deployments import Workspace, alias, dd, ok, wait_for

CANARY_30 = "CodeDeployDefault.LambdaCanary10Percent30Minutes"
LINEAR_10 = "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes"


def refused(folder: Path, verb: str, deployment: str) -> str:
    result = dd(folder, verb, "--deployment-id", deployment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def shifts(workspace: Workspace, deployment: str) -> list[dict]:
    return [e for e in workspace.journal(deployment) if e["kind"] == "ShiftProgressed"]


def test_hold_keeps_the_weight_until_resumed_and_skip_takes_the_next_step(
    tmp_path: Path,
) -> None:
    """hold -> the alias stays at 10 % and the countdown pauses; a second hold, a skip while
    held and a resume when not held are refused saying why; resume, then skip -> 100 % now"""
    workspace = Workspace(tmp_path)
    deployment = workspace.deploy(
        workspace.revision("v2", 1, 2),
        "--deployment-config-name",
        CANARY_30,
        "--time-scale",
        "20",  # the canary's wait lasts 90 s
    )
    wait_for(lambda: alias(workspace).get("2") == 0.1)
    assert "is not held: there is nothing to resume" in refused(
        workspace.root, "resume-traffic-shift", deployment
    )
    held = ok(workspace.root, "hold-traffic-shift", "--deployment-id", deployment)
    assert "held (hold): step 1 of 2, 10% on the target; next step" in held
    assert "already held: resume it with `deploydeck resume-traffic-shift" in refused(
        workspace.root, "hold-traffic-shift", deployment
    )
    assert "is held, so no wait runs to skip" in refused(
        workspace.root, "skip-traffic-wait", deployment
    )
    info = workspace.get(deployment)
    assert info["status"] == "InProgress"
    assert info["trafficShift"]["state"] == "held"
    assert info["trafficShift"]["targetWeight"] == 0.1
    paused = info["trafficShift"]["nextStepInSeconds"]
    assert 0 < paused <= 1800
    text = ok(workspace.root, "get-deployment", "--deployment-id", deployment)
    assert "held (hold): step 1 of 2" in text
    # held: the countdown does not run; seen over a window of several scaled minutes
    before = time.monotonic()
    wait_for(lambda: time.monotonic() - before > 6)  # 2 scaled minutes pass
    assert alias(workspace) == {"1": 0.9, "2": 0.1}
    assert workspace.get(deployment)["trafficShift"]["nextStepInSeconds"] == paused
    resumed = json.loads(
        ok(
            workspace.root,
            "resume-traffic-shift",
            "--deployment-id",
            deployment,
            "--output",
            "json",
        )
    )
    assert resumed["trafficShift"]["state"] == "shifting"
    assert resumed["trafficShift"]["nextStepInSeconds"] <= paused
    ok(workspace.root, "skip-traffic-wait", "--deployment-id", deployment)
    info = workspace.wait(deployment)
    assert info["status"] == "Succeeded"
    assert alias(workspace) == {"2": 1.0}
    progress = shifts(workspace, deployment)
    assert [(p["state"], p["action"]) for p in progress] == [
        ("shifting", ""),
        ("held", "hold"),
        ("shifting", "resume"),
        ("done", "skip"),
    ]
    assert "already ended (Succeeded)" in refused(
        workspace.root, "promote-traffic-shift", deployment
    )


def test_promote_sends_all_traffic_to_the_target_at_once(tmp_path: Path) -> None:
    """promote-traffic-shift during a linear shift's first step -> the alias serves only the
    target version at once and the deployment succeeds without the other eight steps"""
    workspace = Workspace(tmp_path)
    deployment = workspace.deploy(
        workspace.revision("v2", 1, 2),
        "--deployment-config-name",
        LINEAR_10,
        "--time-scale",
        "10",  # each step lasts 60 s
    )
    wait_for(lambda: alias(workspace).get("2") == 0.1)
    out = ok(workspace.root, "promote-traffic-shift", "--deployment-id", deployment)
    assert "traffic shift done (promote): step 10 of 10, 100% on the target" in out
    assert alias(workspace) == {"2": 1.0}
    assert workspace.wait(deployment)["status"] == "Succeeded"
    journal = workspace.journal(deployment)
    assert [e["weight"] for e in journal if e["kind"] == "TrafficShifted"] == [0.1, 1.0]
    assert [e["action"] for e in journal if e["kind"] == "ShiftControlRequested"] == ["promote"]


def test_a_stop_while_held_puts_the_alias_back(tmp_path: Path) -> None:
    """stop-deployment while the shift is held -> the alias serves only the original version
    again; the deployment ends Stopped and its shift says stopped"""
    workspace = Workspace(tmp_path)
    deployment = workspace.deploy(
        workspace.revision("v2", 1, 2), "--deployment-config-name", CANARY_30
    )
    wait_for(lambda: alias(workspace).get("2") == 0.1)
    ok(workspace.root, "hold-traffic-shift", "--deployment-id", deployment)
    ok(workspace.root, "stop-deployment", "--deployment-id", deployment)
    assert workspace.wait(deployment)["status"] == "Stopped"
    assert alias(workspace) == {"1": 1.0}
    assert shifts(workspace, deployment)[-1]["state"] == "stopped"


def test_the_verbs_refuse_a_deployment_that_is_not_shifting(tmp_path: Path) -> None:
    """hold/skip/promote before AllowTraffic (a hook still running) -> refused, saying the
    deployment is not shifting traffic now; nothing is journaled"""
    workspace = Workspace(tmp_path)
    workspace.hook("pre", "silent")
    deployment = workspace.deploy(workspace.revision("v2", 1, 2, BeforeAllowTraffic="pre"))
    wait_for(
        lambda: any(e.get("event") == "BeforeAllowTraffic" for e in workspace.journal(deployment))
    )
    for verb in ("hold-traffic-shift", "skip-traffic-wait", "promote-traffic-shift"):
        assert "is not shifting traffic now" in refused(workspace.root, verb, deployment)
    assert not any(e["kind"] == "ShiftControlRequested" for e in workspace.journal(deployment))
    ok(workspace.root, "stop-deployment", "--deployment-id", deployment)
    assert workspace.wait(deployment)["status"] == "Stopped"
