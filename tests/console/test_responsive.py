"""The console's event loop never waits on slow work: revision scans and hashes, database and
journal reads, and failed workers (which are said, not swallowed)."""

from __future__ import annotations

import asyncio
import threading
import traceback
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

import engine.revision.bundle as bundle
import engine.store as store
from engine.api import Engine
from tests.console.conftest import (
    SIZE,
    deploy_directly,
    make_app,
    screen_ready,
    wait_for,
)
from tests.engine.fleet import make_revision
from tui.messages import RunEngineCommand
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.instance import InstanceScreen
from tui.screens.new_deployment import PATH, NewDeploymentScreen
from tui.widgets.tick_box import TickBox

FILES = 4000  # a revision of many thousand files: scanning and hashing it takes a while


def large_revision(root: Path) -> Path:
    files = {f"f{n:05d}.txt": f"file {n}\n" * 40 for n in range(FILES)}
    return make_revision(root, "large", files)


class HeldHash:
    """Revision hashes held until `release` is set, once `armed`: `hashing` says one waits.
    The order is then certain without timing; a hash on the event loop would hang the
    console, so it fails instead."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, armed: bool = True) -> None:
        self.armed, self.hashing, self.release = (threading.Event() for _ in range(3))
        if armed:
            self.armed.set()
        real = bundle.sha256_directory

        def gated(folder):
            if not self.armed.is_set():
                return real(folder)
            if threading.current_thread() is threading.main_thread():
                raise AssertionError("the revision was hashed on the console's event loop")
            self.hashing.set()
            self.release.wait()
            return real(folder)

        monkeypatch.setattr(bundle, "sha256_directory", gated)


async def form_with_path(pilot, app, revision: Path) -> NewDeploymentScreen:
    """n, then the revision at `revision` typed as a path: the form."""
    await pilot.pause(0.2)
    await pilot.press("n")
    await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))
    form = app.screen
    assert isinstance(form, NewDeploymentScreen)
    form.query_one("#revision").value = PATH
    form.query_one("#path").value = str(revision)
    return form


async def test_keys_are_answered_while_a_large_revision_is_previewed(
    fleet, tmp_path, monkeypatch
) -> None:
    """A large revision's preview -> keys typed while it is hashed take effect at once."""
    path = fleet(2)
    revision = large_revision(tmp_path)
    held = HeldHash(monkeypatch)  # until the test has seen its key answered
    hashing, release = held.hashing, held.release
    app = make_app(path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            form = await form_with_path(pilot, app, revision)
            await wait_for(pilot, hashing.is_set, what="the preview hashing the revision")
            assert form.previewing
            assert "checking the revision" in str(form.query_one("#check").render())
            tick = form.query_one("#outdated", TickBox)
            tick.focus()
            await pilot.press("space")
            await wait_for(pilot, lambda: tick.value, what="the key's effect")
            assert form.previewing and not release.is_set()  # answered before the hash ended
            release.set()
            await wait_for(
                pilot,
                lambda: form.preview is not None and form.previewed == form.request(),
                what="the plan of the form as it is now",
            )
            assert form.previewed.update_outdated_instances_only
            assert form.preview.revision.location == str(revision)
            assert not form.previewing
    finally:
        release.set()  # a failed test leaves no thread waiting


async def test_a_failed_worker_is_said_and_logged(fleet, caplog) -> None:
    """An engine command failing unexpectedly -> a notification and a log line; the console
    carries on."""
    app = make_app(fleet(1))

    async def broken() -> None:
        raise RuntimeError("the disk is on fire")

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        app.post_message(RunEngineCommand(lambda engine: broken(), "done"))
        await wait_for(
            pilot,
            lambda: any("the disk is on fire" in str(n.message) for n in app._notifications),
            what="the notification",
        )
        assert app.is_running
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen), what="a key")
    failed = [r for r in caplog.records if r.name == "deploydeck.console"]
    assert [r.levelname for r in failed] == ["ERROR"]
    assert "An engine command failed" in failed[0].getMessage()
    assert "the disk is on fire" in failed[0].getMessage()


async def test_a_screens_failed_worker_is_said_and_logged(fleet, tmp_path, monkeypatch, caplog):
    """A screen's worker failing unexpectedly (the plan preview) -> the App's notification and
    log line, though a worker's state change does not bubble; the form still answers keys."""
    revision = make_revision(tmp_path, "v1")

    async def broken(self, request):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(Engine, "preview_in_thread", broken)
    app = make_app(fleet(1))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await form_with_path(pilot, app, revision)
        await wait_for(
            pilot,
            lambda: any("the disk is on fire" in str(n.message) for n in app._notifications),
            what="the notification",
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="a key")
    failed = [r for r in caplog.records if r.name == "deploydeck.console"]
    assert failed, "the failure was not logged"
    assert {r.getMessage() for r in failed} == {
        "The plan preview failed: RuntimeError('the disk is on fire')"  # each preview tried
    }


async def test_keys_are_answered_while_a_large_revision_is_deployed(
    fleet, tmp_path, monkeypatch
) -> None:
    """A large revision deployed from the form -> its check and snapshot run in a thread: a
    key pressed meanwhile opens the help at once."""
    path = fleet(1)
    revision = large_revision(tmp_path)
    held = HeldHash(monkeypatch, armed=False)  # the preview's hash is not what this test holds
    armed, hashing, release = held.armed, held.hashing, held.release
    app = make_app(path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            form = await form_with_path(pilot, app, revision)
            await wait_for(
                pilot, lambda: form.preview is not None and not form.previewing, what="the plan"
            )
            armed.set()
            await pilot.press("ctrl+d")
            await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, hashing.is_set, what="the create hashing the revision")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: screen_ready(app, HelpScreen), what="the key's effect")
            assert not release.is_set()  # answered while the revision was being hashed
            release.set()
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="deployed")
    finally:
        release.set()


def palette_hits(app) -> str:
    hits = app.screen.query_one(CommandList)
    return " ".join(str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count))


class LoopReads:
    """Every database query made on the main thread (the console's event loop) once armed,
    with where it came from; queries from other threads (the engine's reading thread, a
    deployment made beside the console) pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.found: list[str] = []
        real = store._Database._call
        guard = self

        def call(database, work):
            if guard.armed and threading.current_thread() is threading.main_thread():
                guard.found.append("".join(traceback.format_stack(limit=12)))
            return real(database, work)

        monkeypatch.setattr(store._Database, "_call", call)


async def test_dashboard_and_deployment_screens_never_read_the_database_on_the_loop(
    fleet, revisions, tmp_path, monkeypatch
) -> None:
    """Dashboard, deployment and instance screens refreshed by a live deployment, the palette,
    the recovery check and quit -> not one database query on the console's event loop."""
    gate = tmp_path / "gate"
    path = fleet(2, env={"i01": {"WAIT_FOR_FILE": str(gate)}})
    gate.touch()
    await deploy_directly(path, revisions("v1"))
    gate.unlink()
    reads = LoopReads(monkeypatch)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        reads.armed = True
        # a deployment made beside the console (as the CLI would), held by a gate file
        beside = asyncio.ensure_future(
            asyncio.to_thread(asyncio.run, deploy_directly(path, revisions("v2")))
        )
        await wait_for(pilot, lambda: dashboard.history.row_count == 2, what="the new row")
        await pilot.press("enter")  # the newest deployment, under the history's cursor
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="its screen")
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await wait_for(pilot, lambda: screen.view is not None and screen.selected is not None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_ready(app, InstanceScreen), what="an instance")
        gate.touch()
        await wait_for(pilot, lambda: beside.done(), what="the deployment's end")
        await wait_for(pilot, lambda: screen.view is not None and screen.view.ended is not None)
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        await wait_for(
            pilot,
            lambda: "v2" in str(dashboard.instances.get_row_at(0)),
            what="the instances running v2",
        )
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"open")
        await wait_for(pilot, lambda: "Open d-" in palette_hits(app), what="the palette's hits")
        await pilot.press("escape")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="quit")
    beside.result()
    assert not reads.found, "database read on the event loop:\n" + "\n".join(reads.found[:3])


async def test_a_screenshot_is_saved_from_the_palette(fleet, tmp_path, monkeypatch) -> None:
    """Save a screenshot from the palette -> the screen's SVG is written (off the loop, with
    aiofiles) where the console runs, and its name is said."""
    monkeypatch.chdir(tmp_path)
    app = make_app(fleet(1))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"save a screenshot")
        await wait_for(pilot, lambda: "Save a screenshot" in palette_hits(app), what="the hit")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("Saved" in str(n.message) for n in app._notifications),
            what="the notification",
        )
    (saved,) = tmp_path.glob("deploydeck_*.svg")
    assert "deployment&#160;groups" in saved.read_text(encoding="utf-8")  # the dashboard
