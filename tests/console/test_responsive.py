"""The console's event loop never waits on slow work: revision scans and hashes, journal reads
and failed workers (which are said, not swallowed)."""

from __future__ import annotations

import threading
from pathlib import Path

import engine.revision.bundle as bundle
from tests.console.conftest import SIZE, make_app, screen_ready, wait_for
from tests.engine.fleet import make_revision
from tui.messages import RunEngineCommand
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.new_deployment import PATH, NewDeploymentScreen
from tui.widgets.tick_box import TickBox

FILES = 4000  # a revision of many thousand files: scanning and hashing it takes a while


def large_revision(root: Path) -> Path:
    files = {f"f{n:05d}.txt": f"file {n}\n" * 40 for n in range(FILES)}
    return make_revision(root, "large", files)


async def test_keys_are_answered_while_a_large_revision_is_previewed(
    fleet, tmp_path, monkeypatch
) -> None:
    """A large revision's preview -> keys typed while it is hashed take effect at once."""
    path = fleet(2)
    revision = large_revision(tmp_path)
    # The hash waits until the test has seen its key answered, which makes the order certain
    # without timing; a hash on the event loop would hang the console, so it fails instead.
    hashing, release = threading.Event(), threading.Event()
    real = bundle.sha256_directory

    def gated(folder):
        if threading.current_thread() is threading.main_thread():
            raise AssertionError("the revision was hashed on the console's event loop")
        hashing.set()
        release.wait()
        return real(folder)

    monkeypatch.setattr(bundle, "sha256_directory", gated)
    app = make_app(path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("n")
            await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))
            form = app.screen
            assert isinstance(form, NewDeploymentScreen)
            form.query_one("#revision").value = PATH
            form.query_one("#path").value = str(revision)
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


async def test_keys_are_answered_while_a_large_revision_is_deployed(
    fleet, tmp_path, monkeypatch
) -> None:
    """A large revision deployed from the form -> its check and snapshot run in a thread: a
    key pressed meanwhile opens the help at once."""
    path = fleet(1)
    revision = large_revision(tmp_path)
    armed, hashing, release = threading.Event(), threading.Event(), threading.Event()
    real = bundle.sha256_directory

    def gated(folder):
        if not armed.is_set():
            return real(folder)  # the preview's hash: not what this test holds
        if threading.current_thread() is threading.main_thread():
            raise AssertionError("the revision was hashed on the console's event loop")
        hashing.set()
        release.wait()
        return real(folder)

    monkeypatch.setattr(bundle, "sha256_directory", gated)
    app = make_app(path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            await pilot.press("n")
            await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))
            form = app.screen
            assert isinstance(form, NewDeploymentScreen)
            form.query_one("#revision").value = PATH
            form.query_one("#path").value = str(revision)
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
