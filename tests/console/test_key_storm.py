"""Keys faster than screens mount and unmount: the console never dies.

Keys go through the driver as a terminal's would, without waiting for the app to settle
between them, so a key can reach a screen still composing or already dismissed.
"""

from __future__ import annotations

import asyncio
import os
import random
import unicodedata

import pytest
from textual import events
from textual.keys import REPLACED_KEYS, _get_unicode_name_from_key

from tests.console.conftest import SIZE, make_app, register, screen_ready, wait_for
from tests.console.test_console_flows import start_from_keyboard
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.new_deployment import NewDeploymentScreen

# the keys and the gaps between them come from this seed; STORM_SEED=<n> runs another storm
SEED = int(os.environ.get("STORM_SEED", "20261207"))
# Every key of every screen, but none that leaves (q, ctrl+q), answers yes (y), deploys
# (ctrl+d) or opens the palette (whose Quit could be chosen): the app must still be there.
STORM_KEYS = [
    "enter",
    "escape",
    "escape",
    "j",
    "k",
    "up",
    "down",
    "tab",
    "shift+tab",
    "slash",
    "f",
    "p",
    "l",
    "n",
    "w",
    "S",
    "R",
    "question_mark",
    "plus",
    "minus",
    "space",
    "a",
    "i",
    "1",
    "exclamation_mark",
    "backspace",
    "home",
    "end",
    "pagedown",
    "pageup",
]


def send_key(app, key: str) -> None:
    """One key into the driver's queue, as a terminal would deliver it; nothing awaited."""
    original = REPLACED_KEYS.get(key, key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


def running_fleet(fleet, revisions):
    path = fleet(
        4,
        config="CodeDeployDefault.OneAtATime",
        env={f"i{n:02d}": {"HOOK_SLEEP": "1"} for n in range(1, 5)},
    )
    register(path, revisions("v1"))
    return path


async def test_enter_and_esc_on_the_history_never_crash(fleet, revisions) -> None:
    """Enter and Esc alternating on the history while a deployment runs, some 0.12 s apart,
    some faster than a screen composes (a loaded machine makes 0.12 s that fast)."""
    rng = random.Random(SEED)
    app = make_app(running_fleet(fleet, revisions))
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: screen.view and screen.view.status == "InProgress")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        for press in range(200):
            send_key(app, "enter" if press % 2 == 0 else "escape")
            await asyncio.sleep(rng.choice((0, 0.002, 0.01, 0.05, 0.12)))
        await pilot.pause()
        assert app.is_running
        # and it still answers: the dashboard, whose n opens the form, whose esc closes it
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        assert len(app.screen_stack) == 2, app.screen_stack  # nothing left half-open below
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen), what="the form")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
    assert app.return_code in (None, 0)


@pytest.mark.parametrize("size", [SIZE, (80, 24)], ids=["large", "80x24"])
async def test_a_seeded_key_storm_across_every_screen(fleet, revisions, size) -> None:
    """Hundreds of random keys, 0 to 30 ms apart, across every screen while a deployment
    runs: the console is still running and answers a key at the end. The seed makes a
    failure reproduce."""
    rng = random.Random(SEED)
    app = make_app(running_fleet(fleet, revisions))
    async with app.run_test(size=size) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: screen.view and screen.view.status == "InProgress")
        for _ in range(600):
            send_key(app, rng.choice(STORM_KEYS))
            await asyncio.sleep(rng.choice((0, 0, 0.005, 0.01, 0.03)))
        await pilot.pause(0.5)
        assert app.is_running
        # still answering: back to the dashboard, then into a deployment
        for _ in range(12):
            await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        app.screen.history.focus()
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="a deployment")
    assert app.return_code in (None, 0)


async def test_a_key_arriving_as_the_console_closes(fleet) -> None:
    """A key still travelling once the screens are gone (seen once in a storm, as the app
    exited) is dropped, not raised as ScreenStackError."""
    app = make_app(fleet(1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
    assert not app.screen_stack
    for forwarded in (False, True):  # from the terminal, or bubbled up from a screen
        key = events.Key("enter", None)
        if forwarded:
            key._set_forwarded()
        await app._dispatch_message(key)  # as the app's message loop would
