"""A deployment's runner is forked from the command that created it: it starts without
loading the engine again, in a session of its own, and outlives the command."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from tests.cli.test_fleet_cli import dd
from tests.engine.fleet import live_pids, make_revision, write_workspace

TARGET = ("--application-name", "app", "--deployment-group-name", "fleet")


def deployment(folder: Path, deployment_id: str) -> dict:
    shown = dd(folder, "get-deployment", "--deployment-id", deployment_id, "--output", "json")
    return json.loads(shown.stdout)["deploymentInfo"]


def engine_pid(folder: Path, deployment_id: str) -> int:
    """The pid the deployment's runner recorded (read-only, as test_runner_faults does)."""
    db = folder / ".deploydeck" / "state.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT engine_pid FROM deployments WHERE id=?", (deployment_id,))
        return int(row.fetchone()[0])


def test_the_runner_outlives_the_command_that_forked_it(tmp_path: Path) -> None:
    write_workspace(tmp_path, 2)
    created = dd(
        tmp_path, "create-deployment", *TARGET, "--revision", str(make_revision(tmp_path, "v1"))
    )
    assert created.returncode == 0, created.stderr
    deployment_id = created.stdout.strip()
    for _ in range(2400):  # the command has exited; its child carries the deployment on
        if deployment(tmp_path, deployment_id)["status"] in ("Succeeded", "Failed", "Stopped"):
            break
        time.sleep(0.05)
    assert deployment(tmp_path, deployment_id)["status"] == "Succeeded"
    log = (tmp_path / ".deploydeck" / "runs" / f"{deployment_id}.log").read_text()
    assert "Traceback" not in log


def test_the_forked_runner_is_a_session_of_its_own(tmp_path: Path) -> None:
    write_workspace(tmp_path, 2, env={"i01": {"HANG_ON": "BeforeInstall"}})
    created = dd(
        tmp_path, "create-deployment", *TARGET, "--revision", str(make_revision(tmp_path, "v1"))
    )
    deployment_id = created.stdout.strip()
    for _ in range(600):
        if live_pids(tmp_path / "pids.txt"):
            break
        time.sleep(0.05)
    pid = engine_pid(tmp_path, deployment_id)
    try:
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"create-deployment" in command  # forked from the command, not started anew
    finally:
        stop = dd(tmp_path, "stop-deployment", "--deployment-id", deployment_id, "--wait")
    assert stop.returncode == 0
    assert live_pids(tmp_path / "pids.txt") == []
