"""Faults of a service's host (engine/services/host.py), the process that keeps an ECS-like
service running between deployments: killed mid-deployment or between deployments, unable to
listen, and a replacement the listeners never find healthy. Real deploydeck processes, real
task processes and HTTP on loopback."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from tests.ecs.test_ecs_deployments import EcsWorkspace, linear_deployment, wait_until_shifting
from tests.functions.test_lambda_deployments import wait_for
from tests.services.conftest import living_in_group
from tests.services.test_host import Load, answers, gone, production, status, task_pids


def test_host_killed_mid_deployment(tmp_path: Path) -> None:
    """the service's host is SIGKILLed while production shifts -> the deployment fails (ECS_UPDATE_ERROR) naming the host and its log, a new host serves the original again, and no task of the killed host is left holding a port"""
    workspace = EcsWorkspace(tmp_path)
    deployment = linear_deployment(workspace, 5)  # each step lasts 36 s
    wait_until_shifting(workspace, deployment)
    before = status(workspace)
    pids = task_pids(before)
    assert len(pids) == 4  # web:1 and web:2, two tasks each
    os.kill(before["hostPid"], signal.SIGKILL)
    info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "ECS_UPDATE_ERROR"
    message = info["errorInformation"]["message"]
    assert f"the host of service web (pid {before['hostPid']}) is gone" in message
    assert str(tmp_path / ".deploydeck" / "services" / "web" / "host.log") in message
    assert "a new host serves the original task set again" in message
    after = status(workspace)
    assert after["hostPid"] not in (None, before["hostPid"])
    assert [(t["taskDefinition"], t["status"]) for t in after["taskSets"]] == [("web:1", "PRIMARY")]
    assert all(not living_in_group(p) for p in pids)
    assert answers(production(workspace)) == "1"


def test_host_killed_between_deployments(tmp_path: Path) -> None:
    """the service's host is SIGKILLed while no deployment runs -> its tasks keep running only until the next deployment starts a new host, which ends them, serves the original again and the deployment succeeds"""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register())
    before = status(workspace)
    pids = task_pids(before)
    os.kill(before["hostPid"], signal.SIGKILL)
    wait_for(lambda: gone(before["hostPid"]))
    assert all(living_in_group(p) for p in pids)  # orphans, until a host ends them
    deployment = workspace.deploy(workspace.revision("v2", workspace.register()))
    assert workspace.wait(deployment)["status"] == "Succeeded"
    assert all(not living_in_group(p) for p in pids)
    after = status(workspace)
    assert after["hostPid"] != before["hostPid"]
    assert [t["taskDefinition"] for t in after["taskSets"]] == ["web:2"]
    assert answers(production(workspace)) == "2"


def test_host_cannot_listen(tmp_path: Path) -> None:
    """the group's production port is taken by another program -> the deployment fails (ECS_UPDATE_ERROR) naming the port and what to do, and no host or task is left running"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        workspace = EcsWorkspace(tmp_path, target={"production_port": port})
        deployment = workspace.deploy(workspace.revision("v1", workspace.register()))
        info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "ECS_UPDATE_ERROR"
    message = info["errorInformation"]["message"]
    assert f"cannot listen on 127.0.0.1:{port}" in message and "choose another" in message
    assert status(workspace)["hostPid"] is None


def test_replacement_unhealthy_through_the_listener(tmp_path: Path) -> None:
    """a replacement task passes its own start check but then fails the listeners' health checks (GET /healthz answers 503) -> Install fails at the start timeout naming the check, and production never sends it a request"""
    workspace = EcsWorkspace(tmp_path, target={"start_timeout_seconds": 3})
    workspace.first(workspace.register())
    sick = workspace.register(HEALTHY_CHECKS="1")
    with Load(production(workspace)) as load:
        deployment = workspace.deploy(workspace.revision("v2", sick))
        info = workspace.wait(deployment)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "ECS_UPDATE_ERROR"
    message = info["errorInformation"]["message"]
    assert "did not become healthy within 3 s" in message and "GET /healthz" in message
    assert "last check: HTTP 503" in message or "503" in message
    assert load.failures == [] and set(load.revisions) == {"1"}
    shown = [
        t
        for c in workspace.task_sets(deployment)
        for t in c["task_sets"]
        if t["task_definition"] == "web:2"
    ]
    assert shown and all(t["traffic_weight"] == 0 for t in shown)
    assert [t["taskDefinition"] for t in status(workspace)["taskSets"]] == ["web:1"]
