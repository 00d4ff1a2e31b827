"""Task counts while a task set starts: the run journals TaskSetsChanged as its tasks start
and become healthy (not only when Install ends), and the open console's task-set view shows
them moving. A real deployment of real task processes, held pending by a gate file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from textual.pilot import Pilot

from engine.workspace import load_workspace
from tests.console.conftest import screen_ready, wait_for
from tests.console.test_gauges import screen_rows
from tests.ecs.test_ecs_deployments import EcsWorkspace
from tui.app import DeployDeckApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen


@contextlib.asynccontextmanager
async def pending_replacement_on_screen(
    tmp_path: Path, count: int, gate: Path
) -> AsyncIterator[tuple[EcsWorkspace, str, DeployDeckApp, Pilot]]:
    """An ECS deployment (web:1, one task) to `count` replacement tasks that wait for `gate`
    before listening, open in the console at 80x24 once they show as pending."""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register(count=1))
    held = workspace.register(count=count, LISTEN_GATE=str(gate))
    deployment = workspace.deploy(workspace.revision("v2", held))
    app = DeployDeckApp(load_workspace(tmp_path / "deploydeck.yml").unwrap())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        app.open_deployment(deployment)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the screen")
        await wait_for(
            pilot,
            lambda: f"Green ACTIVE   web:2 0/{count} run {count} pend" in screen_rows(app),
            timeout=120,
            what="the replacement's tasks pending",
        )
        yield workspace, deployment, app, pilot


async def test_install_shows_its_tasks_pending_then_running_live(tmp_path: Path) -> None:
    """Install of a 3-task replacement held before listening -> the console shows Green 0/3
    running, 3 pending while Install runs; once the tasks listen, 3/3 running; the journal
    has the pending counts before Install ends"""
    gate = tmp_path / "listen"
    async with pending_replacement_on_screen(tmp_path, 3, gate) as opened:
        workspace, deployment, app, pilot = opened
        assert "Blue  PRIMARY  web:1 1/1 run" in screen_rows(app)
        gate.touch()
        await wait_for(
            pilot,
            lambda: "web:2 3/3 run" in screen_rows(app),
            timeout=120,
            what="the replacement's tasks running",
        )
    assert workspace.wait(deployment)["status"] == "Succeeded"
    journal = workspace.journal(deployment)
    installed = next(
        i
        for i, e in enumerate(journal)
        if e["kind"] == "LifecycleEventFinished" and e["event"] == "Install"
    )
    counts = [
        (t["pending_count"], t["running_count"])
        for e in journal[:installed]
        if e["kind"] == "TaskSetsChanged"
        for t in e["task_sets"]
        if t["task_definition"] == "web:2"
    ]
    assert (3, 0) in counts and counts[-1] == (0, 3)
