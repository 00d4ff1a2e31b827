"""The console says whether a group's long-lived host runs: the balancer host of a Server
group (on the dashboard's group line and the deployment screen's traffic view) and an ECS
service's host (in the task-set view). Real hosts, started and ended through the engine;
the console reads them in its reading thread every few seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.geometry import Region
from textual.widget import Widget

from engine.api import Engine
from engine.workspace import load_workspace
from tests.console.conftest import screen_ready, screen_text, wait_for
from tests.ecs.test_ecs_deployments import EcsWorkspace
from tests.functions.test_lambda_deployments import ok
from tests.traffic.conftest import free_port
from tests.traffic.test_inplace_traffic import WebFleet, web_fleet  # noqa: F401 (the fixture)
from tui.app import DeployDeckApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.widgets.host_status import HOST_REFRESH_SECONDS

TIMEOUT = 60 + 4 * HOST_REFRESH_SECONDS  # a few of its reads, on a loaded machine


def shown(app: DeployDeckApp) -> str:
    """The screen's text with runs of spaces as one."""
    return " ".join(screen_text(app).split())


def rows(widget: Widget) -> list[str]:
    """The rows a widget draws now, as text."""
    region = Region(0, 0, widget.size.width, widget.size.height)
    return [strip.text for strip in widget.render_lines(region)]


async def test_the_balancer_host_is_said_running_or_not_on_the_dashboard_and_deployment(
    web_fleet: Any,  # noqa: F811
) -> None:
    """The balancer host ends and starts again: both screens follow within a few reads."""
    port = free_port()
    fleet: WebFleet = web_fleet({"kind": "builtin", "port": port})
    fleet.hold.touch()
    fleet.load_started.touch()
    deployment = await fleet.deploy("v1")
    final = await fleet.engine.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    running = f"balancer ● running: builtin on 127.0.0.1:{port}, host pid"
    refused = (
        "balancer ○ not running: `deploydeck balancer start fleet` starts it; "
        f"requests to 127.0.0.1:{port} are refused"
    )
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        await wait_for(pilot, lambda: running in shown(app), TIMEOUT, "dashboard: running")
        await fleet.engine.stop_balancer("app", "fleet")
        await wait_for(pilot, lambda: "balancer ○ not running" in shown(app), TIMEOUT)
        # at 80 columns the line is one row, cut with an ellipsis rather than wrapped
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        (row,) = rows(dashboard.host_text)
        assert row.strip().startswith("balancer ○ not running: `deploydeck balancer start fleet`")
        assert row.strip().rstrip("…") in refused and len(row.rstrip()) <= 80, row

        app.open_deployment(deployment)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: refused in shown(app), TIMEOUT, "deployment: refused")
        await fleet.engine.start_balancer("app", "fleet")
        await wait_for(pilot, lambda: running in shown(app), TIMEOUT, "deployment: running")
        await fleet.engine.stop_balancer("app", "fleet")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "balancer ○ not running:" in shown(app), TIMEOUT)
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        drawn = rows(screen.traffic_view)
        assert drawn[0].strip().startswith("balancer ○ not running: `deploydeck balancer start")
        assert drawn[1].strip().startswith("capacity"), drawn  # the next line, not a wrap


async def test_the_service_host_is_said_running_or_not_on_the_dashboard_and_task_set_view(
    tmp_path: Path,
) -> None:
    """The ECS service's host is stopped: the dashboard and the task-set view say so."""
    workspace = EcsWorkspace(tmp_path)
    deployment = await asyncio.to_thread(workspace.first, workspace.register())
    (service,) = await Engine(
        load_workspace(workspace.root / "deploydeck.yml").unwrap()
    ).service_status("web")
    production = service["listeners"]["production"]["address"]
    test = service["listeners"]["test"]["address"]
    running = (
        f"service web ● host running (pid {service['hostPid']}): production {production} · "
        f"test {test}"
    )
    stopped = (
        "service web ○ host not running: its next deployment starts it; requests to "
        f"{production} and {test} are refused"
    )
    app = DeployDeckApp(load_workspace(workspace.root / "deploydeck.yml").unwrap())
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
            dashboard = app.screen
            assert isinstance(dashboard, DashboardScreen)
            await wait_for(
                pilot,
                lambda: dashboard.host_text.display and running[:60] in shown(app),
                TIMEOUT,
                "dashboard: running",
            )
            (row,) = rows(dashboard.host_text)  # cut at 80 columns, not wrapped
            assert running.startswith(row.strip().rstrip("…")) and len(row.rstrip()) <= 80, row
            await pilot.resize_terminal(120, 30)
            app.open_deployment(deployment)
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
            await wait_for(pilot, lambda: running in shown(app), TIMEOUT, "task sets: running")
            screen = app.screen
            assert isinstance(screen, DeploymentScreen)
            drawn = rows(screen.weight_gauge)
            assert drawn[1].strip() == "web  production " + production + "  test " + test
            assert drawn[2].strip().startswith("service web ● host running"), drawn
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            drawn = rows(screen.weight_gauge)
            assert drawn[2].strip().startswith("service web ● host running"), drawn
            assert all(len(row.rstrip()) <= 80 for row in drawn), drawn
            await asyncio.to_thread(ok, workspace.root, "service", "stop", "web")
            await pilot.resize_terminal(120, 30)
            await wait_for(
                pilot, lambda: stopped[:100] in shown(app), TIMEOUT, "task sets: stopped"
            )
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
            await wait_for(pilot, lambda: stopped[:60] in shown(app), TIMEOUT, "dashboard: stopped")
    finally:
        await asyncio.to_thread(ok, workspace.root, "service", "stop", "web")
