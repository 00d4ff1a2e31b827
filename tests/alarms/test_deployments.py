"""Alarms during real deployments: a group's alarms are evaluated before each batch and in the
background while it runs; one that trips stops the deployment with ALARM_ACTIVE (its running
hook ended, a rollback when DEPLOYMENT_STOP_ON_ALARM is set); observe-only alarms and a
deployment's override never stop it. Local instances, real hooks, real command alarms and a
real Prometheus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, RunMode
from engine.model import DeploymentInfo
from engine.store import Store
from engine.workspace import load_workspace
from tests.alarms.conftest import Exporter, Prometheus
from tests.console.conftest import screen_ready, screen_text, wait_for
from tests.engine.fleet import kill_runner_and_watchdog, live_pids, make_revision, write_workspace
from tests.host.harness import pid_alive, write_tree
from tests.raw_store import raw_store
from tui.app import DeployDeckApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen

ROLL_BACK_ON_ALARM = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM")


def workspace(
    folder: Path,
    alarms: Sequence[dict[str, Any]],
    *,
    count: int = 3,
    auto_rollback: Sequence[str] = (),
    env: dict[str, dict[str, str]] | None = None,
    run_mode: RunMode = "inline",
    **configuration: Any,
) -> Engine:
    """Group `fleet` of `count` local instances, OneAtATime, with these alarms."""
    path = write_workspace(
        folder, count, config="CodeDeployDefault.OneAtATime", auto_rollback=auto_rollback, env=env
    )
    document = yaml.safe_load(path.read_text())
    group = document["applications"]["app"]["deployment_groups"]["fleet"]
    group["alarm_configuration"] = {"interval_seconds": 0.2, **configuration, "alarms": alarms}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return Engine(load_workspace(path).unwrap(), run_mode=run_mode)


def flagging_revision(folder: Path, flag: Path) -> Path:
    """v2: on i02, AfterInstall creates `flag` (what the alarm watches) and then waits long."""
    revision = make_revision(folder, "v2")
    hook = f"#!/bin/sh\nif [ \"$INSTANCE_NAME\" = i02 ]; then\n  touch '{flag}'\n  sleep 600\nfi\n"
    write_tree(revision, {"hooks/AfterInstall.sh": hook})
    (revision / "hooks" / "AfterInstall.sh").chmod(0o755)
    return revision


def alarm_events(engine: Engine, deployment_id: str) -> list[ev.AlarmEvaluated]:
    store = Store(engine.workspace.state_dir / "state.db")
    try:
        return [
            e.event
            for e in store.journal()
            if isinstance(e.event, ev.AlarmEvaluated) and e.event.deployment_id == deployment_id
        ]
    finally:
        store.close()


async def deploy(engine: Engine, revision: Path, **options: Any) -> DeploymentInfo:
    created = await engine.create_deployment(
        CreateDeploymentRequest("app", "fleet", revision_path=revision, **options)
    )
    return await engine.wait(created.id, timeout=300)


def installed(folder: Path, instance: str) -> str:
    version = folder / ".deploydeck" / "instances" / instance / "fs" / "srv" / "app" / "version.txt"
    return version.read_text() if version.exists() else ""


@pytest.mark.parametrize("roll_back", [True, False], ids=["rollback", "no-rollback"])
async def test_an_alarm_that_fires_mid_deployment_stops_it(tmp_path: Path, roll_back: bool) -> None:
    flag = tmp_path / "errors-flag"
    alarm = {"name": "errors", "type": "command", "command": f"test ! -e '{flag}'"}
    rollback_events = ROLL_BACK_ON_ALARM if roll_back else ("DEPLOYMENT_FAILURE",)
    engine = workspace(tmp_path, [alarm], auto_rollback=rollback_events)
    try:
        good = await deploy(engine, make_revision(tmp_path, "v1"))
        assert good.status == "Succeeded"
        stopped = await deploy(engine, flagging_revision(tmp_path, flag))
        assert stopped.status == "Stopped"
        assert stopped.error_code == "ALARM_ACTIVE"
        assert "alarm errors is in ALARM" in (stopped.error_message or "")
        assert "value 1" in (stopped.error_message or "")
        statuses = {i.name: i.status for i in stopped.instances}
        assert statuses == {"i01": "Succeeded", "i02": "Failed", "i03": "Skipped"}
        after_install = next(e for e in stopped.instance("i02").events if e.name == "AfterInstall")
        assert after_install.status == "Failed"  # its sleeping hook was ended by the stop
        assert [a.state for a in stopped.alarms] == ["ALARM"]
        readings = alarm_events(engine, stopped.id)
        assert readings[0].state == "OK" and readings[-1].state == "ALARM"
        if roll_back:
            rollback_id = stopped.rollback.rollback_deployment_id
            assert rollback_id is not None
            rollback = await engine.wait(rollback_id, timeout=300)
            assert rollback.status == "Succeeded"  # a rollback is not stopped by the alarm
            assert [i.name for i in rollback.instances] == ["i01", "i02"]
            assert installed(tmp_path, "i02") == "v1\n"
        else:
            assert stopped.rollback.rollback_deployment_id is None
            assert "stopped without rollback" in (stopped.rollback.rollback_message or "")
            assert installed(tmp_path, "i01") == "v2\n"
    finally:
        await engine.aclose()


async def test_an_observe_only_alarm_is_journaled_but_never_stops(tmp_path: Path) -> None:
    alarms = [{"name": "canary", "type": "command", "command": "exit 1", "observe_only": True}]
    engine = workspace(tmp_path, alarms, count=2)
    try:
        done = await deploy(engine, make_revision(tmp_path, "v1"))
        assert done.status == "Succeeded"
        readings = alarm_events(engine, done.id)
        assert len(readings) >= 2  # before each of the two batches
        assert all(r.state == "ALARM" and r.observe_only for r in readings)
        api = done.to_api()["alarms"]
        assert api == [
            {
                "name": "canary",
                "state": "ALARM",
                "value": 1.0,
                "threshold": None,
                "message": "exit code 1",
                "observedTime": api[0]["observedTime"],
                "observeOnly": True,
            }
        ]
    finally:
        await engine.aclose()


async def test_an_alarm_already_firing_stops_before_any_instance_is_touched(
    tmp_path: Path,
) -> None:
    engine = workspace(
        tmp_path,
        [{"name": "latency", "type": "command", "command": "echo p95 high; exit 2"}],
        auto_rollback=ROLL_BACK_ON_ALARM,
    )
    try:
        stopped = await deploy(engine, make_revision(tmp_path, "v1"))
        assert stopped.status == "Stopped"
        assert stopped.error_code == "ALARM_ACTIVE"
        assert "latency" in (stopped.error_message or "")
        assert {i.status for i in stopped.instances} == {"Skipped"}
        assert all(e.start_time is None for i in stopped.instances for e in i.events)
        assert installed(tmp_path, "i01") == ""
        assert stopped.rollback.rollback_deployment_id is None  # nothing to roll back
    finally:
        await engine.aclose()


@pytest.mark.parametrize("how", ["group", "override", "not-ignored"])
async def test_an_alarm_that_cannot_be_evaluated(tmp_path: Path, how: str) -> None:
    """ignore_poll_alarm_failure (the group's or the deployment's override) lets the deployment
    go on when an alarm times out; without it, the deployment stops."""
    alarm = {"name": "slow", "type": "command", "command": "sleep 60", "timeout_seconds": 0.3}
    engine = workspace(tmp_path, [alarm], count=2, ignore_poll_alarm_failure=(how == "group"))
    try:
        options = {"ignore_poll_alarm_failure": True} if how == "override" else {}
        done = await deploy(engine, make_revision(tmp_path, "v1"), **options)
        readings = alarm_events(engine, done.id)
        assert readings and all(r.state == "ERROR" for r in readings)
        assert "did not finish within 0.3 s" in readings[0].message
        if how == "not-ignored":
            assert done.status == "Stopped"
            assert done.error_code == "ALARM_ACTIVE"
            assert "could not be evaluated" in (done.error_message or "")
        else:
            assert done.status == "Succeeded"
        if how == "override":
            override = done.to_api()["overrideAlarmConfiguration"]
            assert override == {"ignorePollAlarmFailure": True}
    finally:
        await engine.aclose()


async def test_an_override_disables_the_alarms_for_one_deployment(tmp_path: Path) -> None:
    engine = workspace(tmp_path, [{"name": "errors", "type": "command", "command": "exit 1"}])
    try:
        blocked = await deploy(engine, make_revision(tmp_path, "v1"))
        assert blocked.error_code == "ALARM_ACTIVE"
        done = await deploy(engine, make_revision(tmp_path, "v2"), alarms_enabled=False)
        assert done.status == "Succeeded"
        assert alarm_events(engine, done.id) == []
        assert done.options.alarms_enabled is False  # recorded: a resume keeps it
        assert json.loads(json.dumps(done.to_api()))["overrideAlarmConfiguration"] == {
            "enabled": False
        }
    finally:
        await engine.aclose()


async def test_a_resumed_deployment_keeps_its_alarm_override(tmp_path: Path) -> None:
    engine = workspace(
        tmp_path,
        [{"name": "errors", "type": "command", "command": "exit 1"}],
        env={"i02": {"HANG_ONCE_ON": "AfterInstall"}},
        run_mode="process",
    )
    created = await engine.create_deployment(
        CreateDeploymentRequest(
            "app", "fleet", revision_path=make_revision(tmp_path, "v1"), alarms_enabled=False
        )
    )
    for _ in range(600):
        if len(live_pids(tmp_path / "pids.txt")) == 2:
            break
        await asyncio.sleep(0.05)
    runner = (
        raw_store(engine)
        .db.execute("SELECT engine_pid FROM deployments WHERE id=?", (created.id,))
        .fetchone()[0]
    )
    kill_runner_and_watchdog(runner)
    while pid_alive(runner):
        await asyncio.sleep(0.05)
    fresh = Engine(load_workspace(tmp_path / "deploydeck.yml").unwrap(), run_mode="process")
    await fresh.resume_deployment(created.id)
    final = await fresh.wait(created.id, timeout=120)
    assert final.status == "Succeeded", final.error_message  # the alarm still fires
    assert alarm_events(fresh, created.id) == []


@pytest.mark.xdist_group("alarms-prometheus")
async def test_a_prometheus_alarm_firing_stops_and_rolls_back(
    tmp_path: Path, prometheus: Prometheus, exporter: Exporter
) -> None:
    exporter.lines = ["app_deploy_errors 0"]
    prometheus.wait_for("app_deploy_errors == 0")
    alarm = {
        "name": "five-hundreds",
        "type": "prometheus",
        "url": prometheus.url,
        "query": "app_deploy_errors",
        "threshold": 0.5,
    }
    engine = workspace(tmp_path, [alarm], auto_rollback=ROLL_BACK_ON_ALARM)
    try:
        assert (await deploy(engine, make_revision(tmp_path, "v1"))).status == "Succeeded"
        revision = make_revision(tmp_path, "v2")
        # On i02, AfterInstall says it runs, then waits (until the stop ends it).
        started = tmp_path / "i02-installed"
        hook = (
            f"#!/bin/sh\n[ \"$INSTANCE_NAME\" = i02 ] && touch '{started}' && sleep 600\nexit 0\n"
        )
        write_tree(revision, {"hooks/AfterInstall.sh": hook})
        (revision / "hooks" / "AfterInstall.sh").chmod(0o755)
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=revision)
        )
        while not started.exists():
            await asyncio.sleep(0.05)
        exporter.lines = ["app_deploy_errors 3"]
        await asyncio.to_thread(prometheus.wait_for, "app_deploy_errors == 3")
        stopped = await engine.wait(created.id, timeout=300)
        assert stopped.status == "Stopped" and stopped.error_code == "ALARM_ACTIVE"
        assert "five-hundreds" in (stopped.error_message or "")
        assert "value 3, threshold 0.5" in (stopped.error_message or "")
        rollback = await engine.wait(stopped.rollback.rollback_deployment_id or "", timeout=300)
        assert rollback.status == "Succeeded"
        assert installed(tmp_path, "i02") == "v1\n"
        # The console's deployment screen shows the light that fired, its value and threshold.
        app = DeployDeckApp(engine.workspace)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
            app.open_deployment(created.id)
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
            await wait_for(
                pilot,
                lambda: "◉ five-hundreds ALARM 3/0.5" in screen_text(app),
                what="the alarm light with its value and threshold",
            )
            assert "ALARM_ACTIVE" in screen_text(app)
    finally:
        exporter.lines = []
        await engine.aclose()
