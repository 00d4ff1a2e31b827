"""SIGKILL of the runner process mid-deployment, then recovery from a new process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, EngineError
from engine.workspace import load_workspace
from tests.engine.fleet import kill_runner_and_watchdog, live_pids, make_revision, write_workspace
from tests.host.harness import pid_alive
from tests.raw_store import raw_store
from tui.render.state import FleetState


async def start_and_kill(tmp_path: Path, **workspace) -> tuple[Engine, str, list[int]]:
    """A process-mode deployment whose i02 hangs in AfterInstall; its runner is SIGKILLed,
    and its watchdog first (as a kill of everything would), so the hook is left running."""
    path = write_workspace(
        tmp_path,
        3,
        config="CodeDeployDefault.OneAtATime",
        env={"i02": {"HANG_ONCE_ON": "AfterInstall"}},
        **workspace,
    )
    engine = Engine(load_workspace(path).unwrap(), run_mode="process")
    created = await engine.create_deployment(
        CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v1"))
    )
    pid_file = tmp_path / "pids.txt"
    for _ in range(600):
        if len(live_pids(pid_file)) == 2:
            break
        await asyncio.sleep(0.05)
    hung = live_pids(pid_file)
    assert len(hung) == 2
    runner = (
        raw_store(engine)
        .db.execute("SELECT engine_pid FROM deployments WHERE id=?", (created.id,))
        .fetchone()[0]
    )
    kill_runner_and_watchdog(runner)
    for _ in range(200):
        if not pid_alive(runner):
            break
        await asyncio.sleep(0.05)
    return engine, created.id, hung


async def test_resume_after_sigkill(tmp_path: Path) -> None:
    engine, deployment_id, hung = await start_and_kill(tmp_path)
    # A new process (here: a new engine on the same workspace) finds the orphan.
    fresh = Engine(load_workspace(tmp_path / "deploydeck.yml").unwrap(), run_mode="process")
    assert [o.id for o in fresh.orphans()] == [deployment_id]
    assert fresh.get_deployment(deployment_id).interrupted
    assert [d.interrupted for d in fresh.list_deployments()] == [True]
    assert all(pid_alive(p) for p in hung)  # the dead engine's hook is still running
    with pytest.raises(EngineError, match=r"has an interrupted deployment.*resume-deployment"):
        await fresh.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v2"))
        )
    await fresh.resume_deployment(deployment_id)
    final = await fresh.wait(deployment_id, timeout=120)
    assert final.status == "Succeeded", final.error_message
    assert not any(pid_alive(p) for p in hung)
    assert {i.name: i.status for i in final.instances} == {
        "i01": "Succeeded",
        "i02": "Succeeded",
        "i03": "Succeeded",
    }
    journal = fresh.journal(deployment_id)
    attached = [e.event for e in journal if isinstance(e.event, ev.EngineAttached)]
    assert [a.resumed for a in attached] == [False, True]
    # the journal replays the whole story, before and after the crash
    state = FleetState()
    for entry in journal:
        state.apply(entry.event)
    view = state.deployments[deployment_id]
    assert view.status == "Succeeded" and view.batches == [("i01",), ("i02",), ("i03",)]
    assert fresh.orphans() == []
    assert not fresh.get_deployment(deployment_id).interrupted
    await fresh.aclose()
    await engine.aclose()


async def test_stop_an_orphan(tmp_path: Path) -> None:
    engine, deployment_id, hung = await start_and_kill(tmp_path)
    assert await engine.stop_deployment(deployment_id) == "Succeeded"
    final = engine.get_deployment(deployment_id)
    assert final.status == "Stopped" and final.error_code == "MANUAL_STOP"
    assert {i.name: i.status for i in final.instances} == {
        "i01": "Succeeded",
        "i02": "Failed",
        "i03": "Skipped",
    }
    assert not any(pid_alive(p) for p in hung)
    event = {e.name: e for e in final.instance("i02").events}["AfterInstall"]
    assert event.status == "Failed" and "engine process stopped" in event.diagnostics.message
    await engine.aclose()


async def test_roll_back_an_orphan(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 3, config="CodeDeployDefault.OneAtATime")
    engine = Engine(load_workspace(path).unwrap(), run_mode="process")
    first = await engine.create_deployment(
        CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v0"))
    )
    assert (await engine.wait(first.id, timeout=120)).status == "Succeeded"
    await engine.aclose()
    engine, deployment_id, hung = await start_and_kill(tmp_path)
    assert await engine.rollback(deployment_id) is None  # a running one: stop and roll back
    stopped = engine.get_deployment(deployment_id)
    assert stopped.status == "Stopped"
    rollback = await engine.wait(stopped.rollback.rollback_deployment_id, timeout=120)
    assert rollback.status == "Succeeded" and rollback.revision.sha256 == first.revision.sha256
    assert {i.name for i in rollback.instances} == {"i01", "i02"}
    assert not any(pid_alive(p) for p in hung)
    await engine.aclose()
