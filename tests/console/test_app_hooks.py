"""The console app's methods leave Textual's own hooks working."""

from __future__ import annotations

import sys

from tests.console.conftest import SIZE, make_app, screen_ready, wait_for
from tui.screens.dashboard import DashboardScreen


async def test_a_print_while_the_console_runs_is_captured(fleet) -> None:
    """Textual captures stdout while the app runs and flushes it through App._flush: a
    library that prints and flushes must not end the console with a TypeError."""
    app = make_app(fleet(1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        print("a library says something", flush=True)
        sys.stderr.flush()
        await pilot.pause()
        assert app.is_running
