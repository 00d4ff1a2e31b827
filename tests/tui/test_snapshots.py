"""Snapshots of the console's main screens on the canned workspace (tests/tui/canned.py).

Regenerate deliberately, then look at every changed SVG:
    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update
They share fixed folders under /tmp/deploydeck-snapshots, so xdist keeps them on one worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Select

from tests.console.conftest import screen_ready
from tests.tui.canned import FLEET
from tui.app import DeployDeckApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.instance import InstanceScreen
from tui.screens.new_deployment import NewDeploymentScreen
from tui.widgets.batch_table import BatchTable

pytestmark = pytest.mark.xdist_group("snapshots")

SIZE = (140, 40)
RUNNING = "d-SNAPSHOT4"
FAILED = "d-SNAPSHOT2"


async def until(pilot: Pilot, ready: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Let the app work until `ready()` holds (real waits, such as a debounce timer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()


def open_deployment(
    deployment_id: str, *keys: str, selected: str | None = None, then: type | None = None
):
    """A run_before: open the deployment from the dashboard, check the instance under the
    cursor and at the side is `selected`, press `keys`, check the screen on top is a `then`."""

    async def run_before(pilot: Pilot) -> None:
        app: DeployDeckApp = pilot.app  # type: ignore[assignment]
        await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
        app.open_deployment(deployment_id)
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DeploymentScreen)
                and app.screen.deployment_id == deployment_id
            ),
            f"{deployment_id}'s screen",
        )
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await until(pilot, lambda: isinstance(screen.focused, BatchTable), "a batch table focused")
        if selected is not None:
            await until(
                pilot,
                lambda: (
                    screen.selected == selected
                    and isinstance(screen.focused, BatchTable)
                    and screen.focused.selected_instance == selected
                ),
                f"{selected} selected",
            )
        await pilot.press(*keys)
        if then is not None:
            await until(pilot, lambda: screen_ready(app, then), then.__name__)

    return run_before


def test_dashboard_with_history(snap_compare, canned_app) -> None:
    """Groups, the fleet's instances and what each runs, four deployments (one running, one
    failed and rolled back) and the registered revisions."""
    app = canned_app("dashboard")

    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_new_deployment_shows_plan(snap_compare, canned_app) -> None:
    """n, then web-v2 picked from the registered revisions: the check and the batch plan."""
    app = canned_app("new-deployment", running=False)

    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
        await pilot.press("n")
        await until(pilot, lambda: screen_ready(app, NewDeploymentScreen), "the form")
        screen = app.screen
        assert isinstance(screen, NewDeploymentScreen)
        await pilot.press("enter", "down", "enter")  # the second registered revision
        v2 = next(r for r in app.engine.list_revisions() if r.revision.location.endswith("v2"))
        await until(
            pilot,
            lambda: screen.preview is not None and screen.preview.revision == v2.revision,
            "the plan of web-v2",
        )
        assert screen.query_one("#revision", Select).value == v2.revision.sha256

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_running_deployment(snap_compare, canned_app) -> None:
    """d-SNAPSHOT4: web-1 and web-2 done, web-3 and web-4 InProgress, batch 2 not started."""
    app = canned_app("running")
    # it opens on the first running instance, web-3: its live output at the side
    run_before = open_deployment(RUNNING, selected="web-3")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    view = app.state.deployments[RUNNING]
    assert [view.instances[n].status for n in FLEET[:4]] == ["Succeeded"] * 2 + ["InProgress"] * 2


def test_failed_deployment_with_evidence(snap_compare, canned_app) -> None:
    """d-SNAPSHOT2: batch 1 failed ValidateService, web-1's evidence and output at the side."""
    app = canned_app("failed")
    # it opens on the first failed instance, web-1: its evidence and output at the side
    run_before = open_deployment(FAILED, selected="web-1")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_stop_confirmation(snap_compare, canned_app) -> None:
    """S on the running deployment: what a stop ends and skips, No focused."""
    app = canned_app("stop-confirm")
    run_before = open_deployment(RUNNING, "S", then=ConfirmScreen)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, canned_app) -> None:
    """? on the dashboard: every key by scope and the status legend."""
    app = canned_app("help")

    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
        await pilot.press("question_mark")
        await until(pilot, lambda: screen_ready(app, HelpScreen), "the help screen")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


SMALL = (80, 24)


class TestSmallTerminal:
    """80x24: every panel keeps rows, the selection stays on screen, forms fit."""

    def test_dashboard(self, snap_compare, canned_app) -> None:
        """The history keeps its rows; groups and revisions take only what they hold."""
        app = canned_app("small-dashboard")

        async def run_before(pilot: Pilot) -> None:
            await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
            history = app.screen.history
            await until(pilot, lambda: history.row_count == 4, "four deployments")
            assert history.region.height - 3 >= 4, "every deployment row shown"  # border, labels

        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)

    def test_deployment_selection_stays_visible(self, snap_compare, canned_app) -> None:
        """d-SNAPSHOT4, the last instance of the batches selected with tab and j: the panel
        scrolled so its row is on screen."""
        app = canned_app("small-running")
        opened = open_deployment(RUNNING, selected="web-3")

        async def run_before(pilot: Pilot) -> None:
            await opened(pilot)
            screen = app.screen
            assert isinstance(screen, DeploymentScreen)
            await pilot.press("tab", "j", "j", "j")
            await until(pilot, lambda: screen.selected == "web-8", "web-8 selected")
            await pilot.pause(0.1)
            table = screen.focused
            assert isinstance(table, BatchTable)
            batches = screen.batches.region
            header = 1 + table.header_height
            row_y = table.region.y + header + table.cursor_row - round(table.scroll_y)
            assert batches.y <= row_y < batches.bottom, (row_y, batches)

        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)

    def test_new_deployment_form(self, snap_compare, canned_app) -> None:
        """Every field, the plan and the buttons inside 80 columns."""
        app = canned_app("small-new-deployment", running=False)

        async def run_before(pilot: Pilot) -> None:
            await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
            await pilot.press("n")
            await until(pilot, lambda: screen_ready(app, NewDeploymentScreen), "the form")
            screen = app.screen
            await until(pilot, lambda: screen.preview is not None, "the plan")
            for button in screen.query("Button"):
                assert button.region.right <= SMALL[0] and button.region.bottom <= SMALL[1]

        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)

    def test_help(self, snap_compare, canned_app) -> None:
        app = canned_app("small-help")

        async def run_before(pilot: Pilot) -> None:
            await until(pilot, lambda: screen_ready(app, DashboardScreen), "the dashboard")
            await pilot.press("question_mark")
            await until(pilot, lambda: screen_ready(app, HelpScreen), "the help screen")

        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)

    def test_instance_detail(self, snap_compare, canned_app) -> None:
        """web-3's events one line each, its evidence and its output, within 80x24."""
        app = canned_app("small-instance")
        run_before = open_deployment(RUNNING, "enter", selected="web-3", then=InstanceScreen)
        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)
