"""Console tests: local times in UTC and no blinking cursor, so screens draw the same anywhere."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator

import pytest
from textual.widgets import Input

from engine.workspace import load_workspace
from tests.tui.canned import ROOT, build_workspace, frozen_clock
from tui.app import DeployDeckApp


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """The console formats local times: make local time UTC for the test, then restore it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Input's cursor stays drawn instead of blinking on a timer (harlequin's patch)."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def canned_app() -> Iterator[Callable[..., DeployDeckApp]]:
    """The console on the canned workspace /tmp/deploydeck-snapshots/<name>, frozen clock,
    animations off. A lock on the folder keeps two test runs on one machine from rebuilding
    a workspace under each other."""

    def make(name: str, *, running: bool = True) -> DeployDeckApp:
        workspace = load_workspace(build_workspace(name, running=running)).unwrap()
        app = DeployDeckApp(workspace, clock=frozen_clock())
        app.animation_level = "none"
        return app

    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield make
