"""Pilot tests drive the real console against a real engine deploying to local instances."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
from tests.engine.fleet import make_revision, write_workspace
from tui.app import DeployDeckApp

SIZE = (160, 45)


async def wait_for(
    pilot, condition: Callable[[], object], timeout: float = 60.0, what: str = ""
) -> None:
    """Poll (letting the app run) until `condition()` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.1)


def screen_ready(app: DeployDeckApp, kind: type) -> bool:
    """True once a screen of `kind` is on top and mounted, so its widgets can be queried, and
    has drawn what it reads from the engine in a thread (a screen with `loaded`)."""
    screen = app.screen
    return isinstance(screen, kind) and screen.is_mounted and getattr(screen, "loaded", True)


def screen_text(app: DeployDeckApp) -> str:
    """The text on screen now, from the app's own SVG export (tags stripped)."""
    import html
    import re

    svg = app.export_screenshot()
    lines = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", line) for line in lines)).replace(
        "\xa0", " "
    )


async def start_watch(
    pilot, app: DeployDeckApp, folder: Path, deploy_to: str | None = None, *, seen=None
) -> None:
    """w, the folder (and the group each valid change deploys to), Watch: until the first
    check is said. `seen(screen)` looks at the watch screen before it is filled in."""
    from textual.widgets import Input

    from tui.screens.watch import WatchScreen

    await pilot.pause(0.2)
    await pilot.press("w")
    await wait_for(pilot, lambda: screen_ready(app, WatchScreen))
    if seen is not None:
        seen(app.screen)
    app.screen.query_one("#folder", Input).value = str(folder)
    if deploy_to is not None:
        app.screen.query_one("#deploy").value = deploy_to
    await pilot.click("#watch")
    await wait_for(pilot, lambda: "valid" in app.watch_status, what="the first check")


def make_app(path: Path) -> DeployDeckApp:
    return DeployDeckApp(load_workspace(path).unwrap())


async def deploy_directly(path: Path, revision: Path) -> str:
    """A deployment made outside the console (as the CLI would), waited for."""
    engine = Engine(load_workspace(path).unwrap(), run_mode="process")
    try:
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=revision)
        )
        final = await engine.wait(created.id, timeout=120)
        return final.id
    finally:
        await engine.aclose()


@pytest.fixture
async def fleet(tmp_path: Path):
    """A workspace factory: (instances, **write_workspace options) -> path. Deployments a test
    leaves running (say, after a failed assertion) are stopped afterwards: no hook outlives it."""
    made: list[Path] = []

    def make(count: int = 4, **options) -> Path:
        path = write_workspace(tmp_path, count, **options)
        made.append(path)
        return path

    yield make
    for path in made:
        engine = Engine(load_workspace(path).unwrap())
        try:
            for deployment in engine.list_deployments():
                if not deployment.terminal:
                    await engine.stop_deployment(deployment.id, auto_rollback=False)
                    await engine.wait(deployment.id, timeout=60)
        finally:
            await engine.aclose()


@pytest.fixture
def revisions(tmp_path: Path):
    def make(version: str) -> Path:
        return make_revision(tmp_path, version)

    return make


def register(path: Path, *revisions: Path) -> None:
    engine = Engine(load_workspace(path).unwrap())
    try:
        for revision in revisions:
            engine.register_revision("app", revision, "directory", revision.name)
    finally:
        engine.close()


__all__ = [
    "SIZE",
    "asyncio",
    "deploy_directly",
    "make_app",
    "register",
    "screen_text",
    "start_watch",
    "wait_for",
]
