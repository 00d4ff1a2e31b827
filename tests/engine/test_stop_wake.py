"""A stop request wakes the deployment's runner at once: the runner need not poll the journal
to see it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.api import CreateDeploymentRequest, Engine
from engine.deployments import runner as runner_module
from engine.deployments.wake import wake_path, wake_runner
from engine.workspace import load_workspace
from tests.engine.fleet import live_pids, make_revision, write_workspace


async def test_a_stop_reaches_a_runner_that_would_not_poll_for_an_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hooks hanging on 3 instances, the runner's journal poll an hour apart: the stop request
    wakes it, the deployment ends Stopped and no hook process is left."""
    monkeypatch.setattr(runner_module, "STOP_POLL_SECONDS", 3600.0)
    path = write_workspace(
        tmp_path, 3, env={f"i0{n}": {"HANG_ON": "BeforeInstall"} for n in (1, 2, 3)}
    )
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    try:
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v1"))
        )
        pid_file = tmp_path / "pids.txt"
        while len(live_pids(pid_file)) < 6:  # each hook and its background sleep
            await asyncio.sleep(0.05)
        state = tmp_path / ".deploydeck"
        assert wake_path(state, created.id).exists()  # the runner listens
        assert await engine.stop_deployment(created.id) == "Pending"
        final = await engine.wait(created.id, timeout=600)
        assert final.status == "Stopped" and final.error_code == "MANUAL_STOP"
        assert live_pids(pid_file) == []
        assert not wake_path(state, created.id).exists()  # the runner let go of it
        assert wake_runner(state, created.id) is False  # nobody to wake: not an error
    finally:
        await engine.aclose()


def test_a_wake_path_that_is_not_a_fifo_is_left_alone(tmp_path: Path) -> None:
    """A regular file (or a link) where the FIFO belongs is never written to."""
    path = wake_path(tmp_path, "d-TEST")
    path.parent.mkdir()
    path.write_text("")
    assert wake_runner(tmp_path, "d-TEST") is False
    assert path.read_text() == ""
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, path)
    assert wake_runner(tmp_path, "d-TEST") is False
    assert target.read_text() == ""


async def test_a_follower_sees_the_end_without_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower's journal polls an hour apart: the runner pokes its wake-up line once the
    deployment's end is journaled, so the follower sees Succeeded at once; a line left by a
    follower that is gone is removed."""
    from engine import api
    from engine.deployments.wake import follower_path

    monkeypatch.setattr(api, "EVENT_POLL_SECONDS", 3600.0)
    monkeypatch.setattr(api, "BUSY_POLL_SECONDS", 3600.0)
    path = write_workspace(tmp_path, 2)
    state = tmp_path / ".deploydeck"
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    try:
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v1"))
        )
        stale = follower_path(state, created.id)  # a follower killed before it let go
        stale.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(stale)
        plain = follower_path(state, created.id)  # not a FIFO: never the runner's to remove
        plain.write_text("kept\n")

        async def until_the_end() -> str:
            async for entry in engine.follow(created.id):
                status = getattr(entry.event, "status", None)
                if entry.event.kind == "DeploymentStatusChanged" and status != "InProgress":
                    return str(status)
            return "followed to no end"

        assert await asyncio.wait_for(until_the_end(), timeout=120) == "Succeeded"
        assert not stale.exists() and plain.read_text() == "kept\n"
        plain.unlink()
        assert list((state / "runs").glob("*.follow-*")) == []  # this follower let go of its own
    finally:
        await engine.aclose()
