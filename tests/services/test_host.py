"""A service's host (engine/services/host.py) as a user meets it: real `deploydeck` processes,
a service of real HTTP tasks that keeps answering between deployments, survives its runner's
SIGKILL, is shown by `deploydeck service status` and ended by `deploydeck service stop`; and
rollbacks that route traffic back to the original task set instead of starting a new one."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.ecs.test_ecs_deployments import EcsWorkspace, linear_deployment, wait_until_shifting
from tests.faults.test_runner_faults import deployment_row
from tests.functions.test_lambda_deployments import dd, ok, wait_for
from tests.services.conftest import living_in_group

MAX_REQUESTS = 20_000  # a load never sends more, whatever the test does


class Load:
    """GETs of `address` one after another from a thread until stopped (or MAX_REQUESTS):
    the revisions that answered, and every request that failed."""

    def __init__(self, address: str) -> None:
        self.url = f"http://{address}/"
        self.revisions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        for _ in range(MAX_REQUESTS):
            if self._stop.is_set():
                return
            try:
                with urllib.request.urlopen(self.url, timeout=30) as answer:
                    self.revisions[answer.headers["X-Revision"]] += 1
            except (OSError, urllib.error.URLError) as error:
                self.failures.append(str(error))
            time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def answered(self) -> int:
        return sum(self.revisions.values())


def status(workspace: EcsWorkspace) -> dict[str, Any]:
    """`deploydeck service status web --output json`'s one service."""
    out = ok(workspace.root, "service", "status", "web", "--output", "json")
    (service,) = json.loads(out)["services"]
    return service


def production(workspace: EcsWorkspace) -> str:
    return status(workspace)["listeners"]["production"]["address"]


def answers(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/", timeout=30) as answer:
        return answer.headers["X-Revision"]


def task_pids(service: dict[str, Any]) -> list[int]:
    return [t["pid"] for s in service["taskSets"] for t in s["tasks"]]


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def roll_back(workspace: EcsWorkspace, deployment: str, load: Load) -> str:
    """`deploydeck rollback` of `deployment` while `load` runs: the stopped deployment, its
    rollback Succeeded, and the original answering again; the rollback's id."""
    ok(workspace.root, "rollback", "--deployment-id", deployment)
    assert workspace.wait(deployment)["status"] == "Stopped"
    wait_for(lambda: "rollbackDeploymentId" in workspace.get(deployment)["rollbackInfo"])
    rollback = workspace.get(deployment)["rollbackInfo"]["rollbackDeploymentId"]
    assert workspace.wait(rollback)["status"] == "Succeeded"
    counted = load.revisions["1"]
    wait_for(lambda: load.revisions["1"] >= counted + 10)
    return rollback


@pytest.fixture
def workspace(tmp_path: Path) -> EcsWorkspace:
    return EcsWorkspace(tmp_path)


def test_the_service_answers_between_two_deployments(workspace: EcsWorkspace) -> None:
    """a deployment ends -> its service's host keeps serving it (same host, same listener)
    until the next deployment replaces its task set, which re-attaches to that host"""
    workspace.first(workspace.register())
    first = status(workspace)
    address = first["listeners"]["production"]["address"]
    assert first["hostPid"] and not gone(first["hostPid"])
    assert {answers(address) for _ in range(5)} == {"1"}
    text = ok(workspace.root, "service", "status")
    assert f"web: host pid {first['hostPid']}" in text
    assert "Blue PRIMARY web:1 on web-tg-1: 2/2 running, 0 pending, 100% of production" in text
    with Load(address) as load:
        deployment = workspace.deploy(workspace.revision("v2", workspace.register()))
        assert workspace.wait(deployment)["status"] == "Succeeded"
        wait_for(lambda: load.revisions["2"] >= 5)
    assert load.failures == [] and load.revisions["1"] > 0
    second = status(workspace)
    assert second["hostPid"] == first["hostPid"]
    assert second["listeners"]["production"]["address"] == address
    assert [(t["taskDefinition"], t["status"]) for t in second["taskSets"]] == [
        ("web:2", "PRIMARY")
    ]
    assert {answers(address) for _ in range(5)} == {"2"}
    assert all(gone(pid) for pid in task_pids(first))  # web:1's tasks ended with its drain


def test_service_stop_leaves_no_process(workspace: EcsWorkspace) -> None:
    """`deploydeck service stop web` -> the host and every task process are gone and nothing
    answers on the listener; status says no host runs; the next deployment starts it again"""
    workspace.first(workspace.register(count=3))
    before = status(workspace)
    address = before["listeners"]["production"]["address"]
    pids = task_pids(before)
    assert len(pids) == 3 and all(living_in_group(p) for p in pids)
    out = ok(workspace.root, "service", "stop", "web")
    assert "service web: its host and tasks are stopped" in out
    assert gone(before["hostPid"])
    assert all(not living_in_group(p) for p in pids)
    with pytest.raises(OSError):
        answers(address)
    after = status(workspace)
    assert after["hostPid"] is None and after["taskSets"] == []
    assert "host not running" in ok(workspace.root, "service", "status", "web")
    assert "no host was running" in ok(workspace.root, "service", "stop", "web")
    again = workspace.deploy(workspace.revision("v2", workspace.register()))
    assert workspace.wait(again)["status"] == "Succeeded"
    assert answers(production(workspace)) == "2"


def test_unknown_service_is_refused_naming_the_ones_there_are(workspace: EcsWorkspace) -> None:
    """`service status nope` -> exit 1 naming the services deployed; nothing changes"""
    workspace.first(workspace.register())
    result = dd(workspace.root, "service", "stop", "nope")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no service 'nope' has been deployed here (services: web)" in result.stdout
    assert status(workspace)["hostPid"]


def test_the_host_survives_the_runners_kill_and_the_next_deployment_reattaches(
    workspace: EcsWorkspace,
) -> None:
    """the runner is SIGKILLed mid-shift -> the host keeps serving (no failed request); once
    the orphan is stopped, the next deployment re-attaches to the same host, removes the
    interrupted replacement first and completes"""
    deployment = linear_deployment(workspace, 5)  # each step lasts 36 s
    wait_until_shifting(workspace, deployment)
    host = status(workspace)["hostPid"]
    address = production(workspace)
    refused = dd(workspace.root, "service", "stop", "web")
    assert refused.returncode == 1 and f"deployment {deployment} of service web is running" in (
        refused.stdout
    )
    with Load(address) as load:
        wait_for(lambda: load.answered() >= 5)
        runner = deployment_row(workspace.root, deployment)["engine_pid"]
        os.kill(runner, signal.SIGKILL)
        wait_for(lambda: gone(runner))
        served = load.answered()
        wait_for(lambda: load.answered() >= served + 20)
        ok(workspace.root, "stop-deployment", "--deployment-id", deployment)
        assert workspace.get(deployment)["status"] == "Stopped"
        third = workspace.deploy(workspace.revision("v3", workspace.register()))
        assert workspace.wait(third)["status"] == "Succeeded", workspace.get(third)
        wait_for(lambda: load.revisions["3"] >= 5)
    assert load.failures == []
    after = status(workspace)
    assert after["hostPid"] == host
    assert [(t["taskDefinition"], t["status"]) for t in after["taskSets"]] == [("web:3", "PRIMARY")]
    notes = [e["message"] for e in workspace.journal(third) if e["kind"] == "Note"]
    assert any("web:2" in n and "interrupted deployment" in n for n in notes), notes


def test_a_rollback_routes_traffic_back_and_starts_no_task_set(workspace: EcsWorkspace) -> None:
    """`rollback` mid-shift -> production is back on the original with no failed request;
    the rollback deployment starts no task set (the original's identifier stays) and removes
    the replacement"""
    deployment = linear_deployment(workspace, 20)  # each step lasts 9 s
    wait_until_shifting(workspace, deployment)
    (blue,) = [t for t in status(workspace)["taskSets"] if t["taskDefinition"] == "web:1"]
    with Load(production(workspace)) as load:
        wait_for(lambda: load.revisions["2"] >= 1)
        rollback = roll_back(workspace, deployment, load)
    assert load.failures == []
    after = status(workspace)["taskSets"]
    assert [(t["identifer"], t["status"], t["trafficWeight"]) for t in after] == [
        (blue["identifer"], "PRIMARY", 100.0)
    ]
    shown = {t["identifier"] for c in workspace.task_sets(rollback) for t in c["task_sets"]}
    assert shown == {blue["identifer"]}  # no task set started for the rollback
    events = {
        e["event"]: (e["status"], e.get("note", ""))
        for e in workspace.journal(rollback)
        if e["kind"] == "LifecycleEventFinished"
    }
    assert events["Install"][0] == "Succeeded" and "none started" in events["Install"][1]
    assert events["AfterAllowTraffic"][0] == "Skipped"


def test_a_rollback_after_allow_traffic_routes_back_with_no_failed_request(
    tmp_path: Path,
) -> None:
    """`rollback` during the termination wait (all production traffic on the replacement) ->
    production serves the original again with no failed request, and the replacement is
    removed without a new task set starting"""
    workspace = EcsWorkspace(tmp_path, target={"termination_wait_minutes": 10})
    workspace.first(workspace.register())
    deployment = workspace.deploy(workspace.revision("v2", workspace.register()))
    wait_for(
        lambda: any(
            e["kind"] == "LifecycleEventFinished" and e["event"] == "AfterAllowTraffic"
            for e in workspace.journal(deployment)
        )
    )
    assert answers(production(workspace)) == "2"
    with Load(production(workspace)) as load:
        wait_for(lambda: load.revisions["2"] >= 5)
        rollback = roll_back(workspace, deployment, load)
    assert load.failures == []
    after = status(workspace)["taskSets"]
    assert [(t["taskDefinition"], t["status"]) for t in after] == [("web:1", "PRIMARY")]
    definitions = {
        t["task_definition"] for c in workspace.task_sets(rollback) for t in c["task_sets"]
    }
    assert definitions == {"web:1"}


def test_a_resumed_deployment_removes_the_replacement_its_killed_runner_left(
    workspace: EcsWorkspace,
) -> None:
    """the runner is SIGKILLed mid-shift, then `resume-deployment` -> the resumed run reaches
    the same host, puts all traffic back on the original and removes the replacement; the
    deployment fails saying so, and the service never stopped answering"""
    deployment = linear_deployment(workspace, 5)  # each step lasts 36 s
    wait_until_shifting(workspace, deployment)
    host = status(workspace)["hostPid"]
    with Load(production(workspace)) as load:
        runner = deployment_row(workspace.root, deployment)["engine_pid"]
        os.kill(runner, signal.SIGKILL)
        wait_for(lambda: gone(runner))
        ok(workspace.root, "resume-deployment", "--deployment-id", deployment)
        info = workspace.wait(deployment)
        counted = load.revisions["1"]
        wait_for(lambda: load.revisions["1"] >= counted + 10)
    assert load.failures == []
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "INTERNAL_ERROR"
    assert "replacement task set was removed" in info["errorInformation"]["message"]
    after = status(workspace)
    assert after["hostPid"] == host
    assert [(t["taskDefinition"], t["trafficWeight"]) for t in after["taskSets"]] == [
        ("web:1", 100.0)
    ]


def test_new_listener_ports_move_the_service_to_a_new_host(tmp_path: Path) -> None:
    """the group's target drops its test listener between deployments -> the next deployment
    starts a new host without one (the old host and its tasks end) and succeeds"""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register())
    before = status(workspace)
    assert before["listeners"]["test"] is not None
    EcsWorkspace(tmp_path, target={"test_port": None})  # rewrites deploydeck.yml
    deployment = workspace.deploy(workspace.revision("v2", workspace.register()))
    assert workspace.wait(deployment)["status"] == "Succeeded"
    after = status(workspace)
    assert after["hostPid"] != before["hostPid"] and gone(before["hostPid"])
    assert after["listeners"]["test"] is None
    assert all(gone(pid) for pid in task_pids(before))
    assert answers(after["listeners"]["production"]["address"]) == "2"


def test_the_host_replaces_a_task_that_dies_between_deployments(workspace: EcsWorkspace) -> None:
    """a task of the hosted service is SIGKILLed while no deployment runs -> the host starts a
    new one in its place (status shows it running, one restart) and the service answers"""
    workspace.first(workspace.register())
    before = status(workspace)
    victim = before["taskSets"][0]["tasks"][0]
    os.killpg(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        (task_set,) = status(workspace)["taskSets"]
        tasks = task_set["tasks"]
        return (
            task_set["runningCount"] == 2
            and victim["taskId"] not in {t["taskId"] for t in tasks}
            and any(t["restarts"] == 1 for t in tasks)
        )

    wait_for(replaced)
    assert status(workspace)["hostPid"] == before["hostPid"]
    address = before["listeners"]["production"]["address"]
    assert {answers(address) for _ in range(10)} == {"1"}
