"""Operator habits: j/k move in every list, the filter applies as you type and clearing it
keeps the order, f follows (never unfollows)."""

from __future__ import annotations

from textual.widgets import Input

from tests.console.conftest import SIZE, deploy_directly, make_app, screen_ready, wait_for
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.widgets.batch_table import BatchTable

NAMES = ["i01", "i02", "i03", "i04"]


def rows(table: BatchTable) -> list[str]:
    """Instance names in the order the table draws them."""
    return [str(table.get_row_at(n)[0]) for n in range(table.row_count)]


async def open_finished(pilot, app, deployment_id: str) -> tuple[DeploymentScreen, BatchTable]:
    await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
    app.open_deployment(deployment_id)
    await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the deployment")
    screen = app.screen
    await wait_for(pilot, lambda: list(screen.query(BatchTable)), what="the batch table")
    table = screen.query_one(BatchTable)
    await wait_for(pilot, lambda: rows(table) == NAMES, what="all four rows")
    return screen, table


async def test_filter_applies_as_you_type_and_clearing_keeps_the_order(fleet, revisions) -> None:
    path = fleet(4)
    deployment_id = await deploy_directly(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_finished(pilot, app, deployment_id)
        await pilot.press("slash", "exclamation_mark", "i", "0", "1")
        # no Enter yet: the rows follow the typing
        await wait_for(pilot, lambda: rows(table) == NAMES[1:], what="!i01 applied as typed")
        await pilot.press("backspace")
        await wait_for(pilot, lambda: rows(table) == [], what="!i0 hides every row")
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: rows(table) == NAMES[1:], what="!i01 kept")
        assert not screen.filter_box.display and table.has_focus
        await pilot.press("escape")  # clears the filter: i01 comes back first, not last
        await wait_for(pilot, lambda: len(rows(table)) == 4, what="the filter cleared")
        assert rows(table) == NAMES
        assert isinstance(app.screen, DeploymentScreen)
        # a filter that hides rows in the middle, then cleared while typing
        await pilot.press("slash", "exclamation_mark", "i", "0", "2")
        await wait_for(pilot, lambda: rows(table) == ["i01", "i03", "i04"], what="!i02")
        await pilot.press("escape")
        await wait_for(pilot, lambda: rows(table) == NAMES, what="cleared again, in order")
        assert not screen.query_one("#filter", Input).display


async def test_j_and_k_move_like_arrows_and_f_keeps_following(fleet, revisions) -> None:
    path = fleet(4)
    deployment_id = await deploy_directly(path, revisions("v1"))
    await deploy_directly(path, revisions("v2"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        history = app.screen.history
        await wait_for(pilot, lambda: history.row_count == 2, what="two deployments")
        assert history.has_focus and history.cursor_row == 0
        await pilot.press("j")
        assert history.cursor_row == 1 and history.selected_key == deployment_id
        await pilot.press("k")
        assert history.cursor_row == 0
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the deployment")
        screen = app.screen
        assert screen.deployment_id == deployment_id
        await wait_for(pilot, lambda: list(screen.query(BatchTable)), what="the batch table")
        table = screen.query_one(BatchTable)
        await wait_for(pilot, lambda: rows(table) == NAMES and table.has_focus, what="the rows")
        table.move_cursor(row=0)
        await pilot.press("j", "j")
        await wait_for(pilot, lambda: screen.selected == "i03", what="j, j: i03 selected")
        await pilot.press("k")
        await wait_for(pilot, lambda: screen.selected == "i02", what="k: i02 selected")
        pane = screen.output_pane
        assert pane.follow
        await pilot.press("f")
        assert pane.follow, "f on a followed instance must keep following"
        await pilot.press("f", "f")
        assert pane.follow
        # help scrolls with j and k too
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: screen_ready(app, HelpScreen), what="help")
        keys = app.screen.keys
        await pilot.press("j", "j", "j")
        assert keys.scroll_y > 0
        await pilot.press("k", "k", "k")
        assert keys.scroll_y == 0
