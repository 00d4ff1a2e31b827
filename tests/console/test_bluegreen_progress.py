"""The deployment screen's progress bar during a Server blue/green deployment's waits: its
instances all end at its very end, so the bar follows its phases instead (green installed,
traffic moved, blue dealt with), not the count of instances done."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import ProgressBar

from engine.workspace import load_workspace
from tests.bluegreen.conftest import BlueGreenFleet, deploy_to_ready, deploy_to_termination_wait
from tests.console.conftest import screen_ready, wait_for
from tui.app import DeployDeckApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import GREEN_INSTALLED, TRAFFIC_MOVED, DeploymentScreen


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[BlueGreenFleet]:
    made = BlueGreenFleet(tmp_path, {"kind": "builtin"})
    yield made
    await made.close()


async def _bar_in_wait(fleet: BlueGreenFleet, deployment: str, wait: str, expected: float) -> float:
    """The progress bar's fraction on the deployment's screen, once it shows `wait` and the
    screen has redrawn the bar for it (the redraw follows the fold by a timer's tick): once it
    shows `expected`, or as it stands when the wait for that runs out."""
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        app.open_deployment(deployment)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await wait_for(
            pilot,
            lambda: (
                (view := screen.view) is not None
                and view.wait is not None
                and view.wait.wait_type == wait
            ),
            what=f"the {wait} folded",
        )
        bar = screen.query_one("#progress", ProgressBar)
        with contextlib.suppress(AssertionError):  # the assertion below says what it showed
            await wait_for(
                pilot,
                lambda: bar.percentage == pytest.approx(expected, abs=0.01),
                timeout=10,
                what=f"the bar at {expected:.0%}",
            )
        assert bar.total is not None and bar.percentage is not None
        return bar.percentage


async def test_the_progress_bar_in_the_ready_wait_shows_green_installed(
    fleet: BlueGreenFleet,
) -> None:
    """Green installed and waiting in Ready: the bar stands at the green install's share."""
    waiting = await deploy_to_ready(fleet, 30)
    fraction = await _bar_in_wait(fleet, waiting.id, "READY_WAIT", GREEN_INSTALLED)
    assert fraction == pytest.approx(GREEN_INSTALLED, abs=0.01)
    await fleet.e.stop_deployment(waiting.id)
    await fleet.e.wait(waiting.id, timeout=300)


async def test_the_progress_bar_in_the_termination_wait_shows_traffic_moved(
    fleet: BlueGreenFleet,
) -> None:
    """Traffic on green, blue waiting for termination: green installed and traffic moved."""
    deployment = await deploy_to_termination_wait(fleet)
    fraction = await _bar_in_wait(
        fleet, deployment, "TERMINATION_WAIT", GREEN_INSTALLED + TRAFFIC_MOVED
    )
    assert fraction == pytest.approx(GREEN_INSTALLED + TRAFFIC_MOVED, abs=0.01)
    await fleet.e.stop_deployment(deployment)
    await fleet.e.wait(deployment, timeout=300)
