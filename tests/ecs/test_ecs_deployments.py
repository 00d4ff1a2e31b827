"""ECS deployments as a user runs them: real `deploydeck` processes, a service whose tasks are
real HTTP servers (tests/services/sample_task.py) behind production and test listeners, hooks
that are functions reporting over HTTP, traffic shifted on a scaled clock."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.configs import get_config
from engine.configs.traffic import traffic_schedule
from tests.functions.test_lambda_deployments import (
    HOOK_WORKER,
    DeployingWorkspace,
    dd,
    ok,
    wait_for,
)
from tests.services.conftest import SAMPLE

ECS_CONFIGS = [
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
]
TARGET = {
    "service": "web",
    "production_port": 0,
    "test_port": 0,
    "health_check": {"interval_seconds": 0.05, "healthy_threshold": 2},
    "deregistration_delay_seconds": 2,
    "start_timeout_seconds": 30,
}


class EcsWorkspace(DeployingWorkspace):
    """Application `svc` (ECS), group `live` deploying service `web`; task definition `web`
    revisions registered as asked (each a sample task, `count` tasks)."""

    application = "svc"

    def __init__(self, root: Path, **group: Any) -> None:
        self.root = root
        target = {**TARGET, **group.pop("target", {})}
        document = {
            "applications": {
                "svc": {
                    "compute_platform": "ECS",
                    "deployment_groups": {"live": {"target": target, **group}},
                }
            }
        }
        (root / "deploydeck.yml").write_text(yaml.safe_dump(document, sort_keys=False))

    def register(self, count: int = 2, **environment: str) -> str:
        """The next revision of task definition `web`, registered by the CLI; its name."""
        out = ok(
            self.root,
            "register-task-definition",
            "--family",
            "web",
            "--command",
            f"{sys.executable} {SAMPLE}",
            "--desired-count",
            str(count),
            "--health-check-path",
            "/healthz",
            "--output",
            "json",
            *(
                ["--environment", *(f"{k}={v}" for k, v in environment.items())]
                if environment
                else []
            ),
        )
        registered = json.loads(out)["taskDefinition"]
        return f"{registered['family']}:{registered['revision']}"

    def hook(self, name: str, result: str = "Succeeded", gate: Path | None = None) -> Path:
        code = self.root / "code" / name
        code.mkdir(parents=True, exist_ok=True)
        (code / "worker.py").write_text(HOOK_WORKER)
        environment = [f"HOOK_RESULT={result}"]
        if gate is not None:
            environment.append(f"HOOK_GATE={gate}")
        ok(
            self.root,
            "create-function",
            "--function-name",
            name,
            "--code",
            str(code),
            "--command",
            f"{sys.executable} worker.py",
            "--timeout",
            "300",  # a gated hook waits for its gate
            *(arg for env in environment for arg in ("--environment", env)),
        )
        return code / "calls.jsonl"

    def revision(self, name: str, task_definition: str, **hooks: str) -> Path:
        folder = self.root / "revisions" / name
        folder.mkdir(parents=True)
        appspec = {
            "version": 0.0,
            "Resources": [
                {
                    "web": {
                        "Type": "AWS::ECS::Service",
                        "Properties": {
                            "TaskDefinition": task_definition,
                            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080},
                        },
                    }
                }
            ],
            "Hooks": [{event: function} for event, function in hooks.items()],
        }
        (folder / "appspec.yaml").write_text(yaml.safe_dump(appspec, sort_keys=False))
        return folder

    def task_sets(self, deployment_id: str) -> list[dict[str, Any]]:
        """Every TaskSetsChanged of the deployment, in order."""
        return [e for e in self.journal(deployment_id) if e["kind"] == "TaskSetsChanged"]

    def first(self, definition: str) -> str:
        """Deploy `definition` as the service's first task set; its deployment id."""
        deployment = self.deploy(self.revision(f"first-{definition}", definition))
        info = self.wait(deployment)
        assert info["status"] == "Succeeded", info
        return deployment


def revision_at(address: str) -> str:
    """The task definition revision that answers GET / at host:port."""
    with urllib.request.urlopen(f"http://{address}/", timeout=30) as response:
        return response.headers["X-Revision"]


def weights(change: dict[str, Any]) -> dict[str, tuple[str, float, float]]:
    """task definition -> (status, production weight, test weight) in one TaskSetsChanged."""
    return {
        t["task_definition"]: (t["status"], t["traffic_weight"], t["test_traffic_weight"])
        for t in change["task_sets"]
    }


def serving(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The TaskSetsChanged from the first one where web:1 takes all production traffic on."""
    start = next(
        (i for i, c in enumerate(changes) if weights(c).get("web:1", ("", 0))[1] == 100),
        len(changes),
    )
    return changes[start:]


def linear_deployment(workspace: EcsWorkspace, scale: float) -> str:
    """web:1 as the service's first task set, then a deployment of web:2 shifting 10 % every
    3 minutes at `scale`."""
    workspace.first(workspace.register())
    return workspace.deploy(
        workspace.revision("v2", workspace.register()),
        "--deployment-config-name",
        "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
        "--time-scale",
        f"{scale:g}",
    )


def wait_until_shifting(workspace: EcsWorkspace, deployment: str) -> None:
    """Until production sends some of its traffic to the replacement (web:2)."""
    wait_for(
        lambda: any(
            weights(c).get("web:2", ("", 0, 0))[1] > 0 for c in workspace.task_sets(deployment)
        )
    )


@pytest.fixture
def workspace(tmp_path: Path) -> EcsWorkspace:
    return EcsWorkspace(tmp_path)


def test_a_services_first_deployment_starts_it_and_the_next_replaces_its_task_set(
    workspace: EcsWorkspace,
) -> None:
    """first deployment -> web:1 is the primary on target group 1; the next -> web:2 becomes
    primary on target group 2 and web:1 is drained and removed; get-deployment shows both"""
    first = workspace.first(workspace.register())
    change = workspace.task_sets(first)[-1]
    assert weights(change) == {"web:1": ("PRIMARY", 100.0, 100.0)}
    assert change["task_sets"][0]["target_group"] == "web-tg-1"
    deployment = workspace.deploy(workspace.revision("v2", workspace.register()))
    info = workspace.wait(deployment)
    assert info["status"] == "Succeeded", info
    ecs = info["ecsTarget"]
    assert [
        (t["taskSetLabel"], t["status"], t["taskDefinition"], t["targetGroup"]["name"])
        for t in ecs["taskSetsInfo"]
    ] == [("Blue", "PRIMARY", "web:2", "web-tg-2")]
    assert ecs["taskSetsInfo"][0]["trafficWeight"] == 100.0
    assert ecs["taskSetsInfo"][0]["runningCount"] == ecs["taskSetsInfo"][0]["desiredCount"] == 2
    events = {
        e["event"]: e["status"]
        for e in workspace.journal(deployment)
        if e["kind"] == "LifecycleEventFinished"
    }
    assert events == {
        "BeforeInstall": "Skipped",
        "Install": "Succeeded",
        "AfterInstall": "Skipped",
        "AllowTestTraffic": "Succeeded",
        "AfterAllowTestTraffic": "Skipped",
        "BeforeAllowTraffic": "Skipped",
        "AllowTraffic": "Succeeded",
        "AfterAllowTraffic": "Skipped",
    }
    labels = [
        [(t["label"], t["status"], t["task_definition"]) for t in c["task_sets"]]
        for c in workspace.task_sets(deployment)
    ]
    assert labels[0] == [("Blue", "PRIMARY", "web:1")]
    assert any(("Green", "ACTIVE", "web:2") in shown for shown in labels)
    text = ok(workspace.root, "get-deployment", "--deployment-id", deployment)
    assert "web (production 127.0.0.1:" in text and "Blue PRIMARY web:2 on web-tg-2" in text
    # a third deployment goes back to target group 1
    third = workspace.deploy(workspace.revision("v3", workspace.register()))
    assert workspace.wait(third)["status"] == "Succeeded"
    final = workspace.get(third)["ecsTarget"]["taskSetsInfo"]
    assert [(t["taskDefinition"], t["targetGroup"]["name"]) for t in final] == [
        ("web:3", "web-tg-1")
    ]


@pytest.mark.parametrize("config_name", ECS_CONFIGS, ids=lambda n: n.split(".")[1])
def test_each_ecs_config_shifts_production_by_its_schedule_under_time_scaling(
    workspace: EcsWorkspace, config_name: str
) -> None:
    """each predefined ECS config -> the production listener's weights follow its schedule on
    the deployment's scaled clock, ending with all traffic on the replacement"""
    config = get_config(config_name, {})
    assert config is not None and config.traffic_routing is not None
    schedule = traffic_schedule(config.traffic_routing)
    interval = schedule[1].at_seconds if len(schedule) > 1 else 60
    scale = interval / 0.5  # an interval of the schedule takes half a second
    workspace.first(workspace.register())
    deployment = workspace.deploy(
        workspace.revision("v2", workspace.register()),
        "--deployment-config-name",
        config_name,
        "--time-scale",
        f"{scale:g}",
    )
    info = workspace.wait(deployment)
    assert info["status"] == "Succeeded", info
    journal = workspace.journal(deployment)
    (allow,) = [
        e["time"]
        for e in journal
        if e["kind"] == "LifecycleEventStarted" and e["event"] == "AllowTraffic"
    ]
    during = [
        e
        for e in journal
        if e["kind"] == "TaskSetsChanged"
        and e["time"] >= allow
        and "web:1" in weights(e)
        and weights(e)["web:1"][0] == "PRIMARY"
    ]
    shifted = [weights(e)["web:2"][1] for e in during]
    wanted = [float(step.target_percent) for step in schedule]
    assert shifted == wanted
    for change, step in zip(during, schedule, strict=True):
        assert step.at_seconds <= change["time"] - allow < step.at_seconds + interval
        assert weights(change)["web:1"][1] == 100 - step.target_percent


def test_the_test_listener_serves_green_while_production_serves_blue(
    workspace: EcsWorkspace, tmp_path: Path
) -> None:
    """during AfterAllowTestTraffic -> the test listener answers from the replacement (web:2)
    and production from the original (web:1); once the hook reports, production moves too"""
    gate = tmp_path / "gate"
    calls = workspace.hook("check", gate=gate)
    workspace.first(workspace.register())
    deployment = workspace.deploy(
        workspace.revision("v2", workspace.register(), AfterAllowTestTraffic="check")
    )
    wait_for(lambda: calls.exists())
    (change,) = [
        c
        for c in workspace.task_sets(deployment)
        if "web:2" in weights(c) and weights(c)["web:2"][2] == 100
    ]
    production, test = change["production"], change["test"]
    assert {revision_at(production) for _ in range(10)} == {"1"}
    assert {revision_at(test) for _ in range(10)} == {"2"}
    info = workspace.get(deployment)
    assert info["status"] == "InProgress"
    by_definition = {t["taskDefinition"]: t for t in info["ecsTarget"]["taskSetsInfo"]}
    assert by_definition["web:1"]["trafficWeight"] == 100.0
    assert by_definition["web:2"]["testTrafficWeight"] == 100.0
    assert by_definition["web:2"]["taskSetLabel"] == "Green"
    gate.touch()
    assert workspace.wait(deployment)["status"] == "Succeeded"
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["DeploymentId"] == deployment


def test_a_task_that_crashes_during_install_fails_the_deployment_cleanly(
    workspace: EcsWorkspace,
) -> None:
    """a replacement task exits while starting -> Install fails (ECS_UPDATE_ERROR) with the
    task's output; no replacement is left and production stayed on the original"""
    workspace.first(workspace.register())
    broken = workspace.register(CRASH_AT_START="2")
    deployment = workspace.deploy(workspace.revision("v2", broken))
    info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "ECS_UPDATE_ERROR"
    message = info["errorInformation"]["message"]
    assert "replacement task set of web:2 did not become healthy" in message
    assert "error: the settings file is missing" in message
    changes = serving(workspace.task_sets(deployment))
    assert changes and all(weights(c)["web:1"][1] == 100 for c in changes)
    assert [t["task_definition"] for t in changes[-1]["task_sets"]] == ["web:1"]
    failed = [
        (e["event"], e["status"])
        for e in workspace.journal(deployment)
        if e["kind"] == "LifecycleEventFinished"
    ]
    assert failed[:2] == [("BeforeInstall", "Skipped"), ("Install", "Failed")]
    # the next deployment starts from web:1 again
    again = workspace.deploy(workspace.revision("v3", workspace.register()))
    assert workspace.wait(again)["status"] == "Succeeded"
    assert workspace.task_sets(again)[0]["task_sets"][0]["task_definition"] == "web:1"


@pytest.mark.parametrize("verb", ["stop-deployment", "rollback"])
def test_stopping_mid_shift_routes_production_back_and_removes_the_replacement(
    workspace: EcsWorkspace, verb: str
) -> None:
    """a stop (or a rollback) while production is part-way to the replacement -> production and
    test traffic are back on the original at once, the replacement is removed; Stopped"""
    deployment = linear_deployment(workspace, 20)  # each step lasts 9 s
    wait_until_shifting(workspace, deployment)
    ok(workspace.root, verb, "--deployment-id", deployment)
    info = workspace.wait(deployment)
    assert info["status"] == "Stopped"
    changes = workspace.task_sets(deployment)
    shifted = next(i for i, c in enumerate(changes) if weights(c).get("web:2", ("", 0))[1] > 0)
    back = next(i for i, c in enumerate(changes) if i > shifted and weights(c)["web:1"][1] == 100)
    assert weights(changes[back])["web:2"][1] == 0  # production back first, before draining
    assert weights(changes[-1]) == {"web:1": ("PRIMARY", 100.0, 100.0)}
    if verb == "rollback":
        wait_for(
            lambda: "rollbackDeploymentId" in workspace.get(deployment).get("rollbackInfo", {})
        )
        rollback = workspace.get(deployment)["rollbackInfo"]["rollbackDeploymentId"]
        assert workspace.wait(rollback)["status"] == "Succeeded"


def test_an_alarm_mid_shift_puts_production_back_within_one_evaluation_interval(
    tmp_path: Path,
) -> None:
    """an alarm fires while production is shifting -> within one evaluation interval (on the
    deployment's clock) production is all on the original again; Stopped with ALARM_ACTIVE"""
    flag = tmp_path / "alarm-flag"
    workspace = EcsWorkspace(
        tmp_path,
        alarm_configuration={
            "interval_seconds": 5,
            "alarms": [{"name": "errors", "type": "command", "command": f"test ! -e {flag}"}],
        },
    )
    deployment = linear_deployment(workspace, 10)  # each step lasts 18 s
    wait_until_shifting(workspace, deployment)
    flag.touch()
    info = workspace.wait(deployment)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    journal = workspace.journal(deployment)
    tripped = next(
        e["time"] for e in journal if e["kind"] == "AlarmEvaluated" and e["state"] == "ALARM"
    )
    back = next(
        e["time"]
        for e in journal
        if e["kind"] == "TaskSetsChanged" and e["time"] >= tripped and weights(e)["web:1"][1] == 100
    )
    assert back - tripped <= 5
    assert weights(workspace.task_sets(deployment)[-1]) == {"web:1": ("PRIMARY", 100.0, 100.0)}


def test_hold_and_promote_steer_an_ecs_shift(workspace: EcsWorkspace) -> None:
    """hold -> production's weights stay; promote -> everything on the replacement at once;
    the deployment then drains the original and succeeds"""
    deployment = linear_deployment(workspace, 5)  # each step lasts 36 s
    wait_for(lambda: workspace.get(deployment).get("trafficShift", {}).get("step") == 1)
    held = ok(workspace.root, "hold-traffic-shift", "--deployment-id", deployment)
    assert "held (hold): step 1 of 10, 10% on the target" in held
    skip = dd(workspace.root, "skip-traffic-wait", "--deployment-id", deployment)
    assert skip.returncode == 1 and "is held" in skip.stdout
    ok(workspace.root, "resume-traffic-shift", "--deployment-id", deployment)
    skipped = ok(workspace.root, "skip-traffic-wait", "--deployment-id", deployment)
    assert "step 2 of 10, 20% on the target" in skipped
    ok(workspace.root, "promote-traffic-shift", "--deployment-id", deployment)
    assert workspace.wait(deployment)["status"] == "Succeeded"
    shifted = [
        weights(c)["web:2"][1]
        for c in workspace.task_sets(deployment)
        if weights(c).get("web:1", ("",))[0] == "PRIMARY" and "web:2" in weights(c)
    ]
    assert shifted[-3:] == [10.0, 20.0, 100.0]
