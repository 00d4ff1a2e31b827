"""`create-deployment --wait` follows its own deployment's journal, whatever the history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine import events as ev
from tests.command_line import dd
from tests.engine.fleet import make_revision, write_workspace
from tui.render.plain import PlainRenderer


def create(folder: Path, revision: Path, *extra: str):
    return dd(
        folder,
        "create-deployment",
        "--application-name",
        "app",
        "--deployment-group-name",
        "fleet",
        "--revision",
        str(revision),
        *extra,
    )


def test_wait_never_reads_other_deployments_entries(tmp_path: Path) -> None:
    write_workspace(tmp_path, 2)
    v1, v2 = make_revision(tmp_path, "v1"), make_revision(tmp_path, "v2")
    assert create(tmp_path, v1, "--wait").returncode == 0
    # an earlier deployment's entry no reader could decode: a follower that read the
    # workspace's whole journal would trip on it; one that reads its own never sees it
    db = sqlite3.connect(tmp_path / ".deploydeck" / "state.db")
    with db:
        db.execute(
            "INSERT INTO journal (deployment_id, time, kind, payload) VALUES (?, ?, ?, ?)",
            ("d-elsewhere", 0.0, "Note", "{not json"),
        )
    db.close()
    done = create(tmp_path, v2, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout and "Traceback" not in done.stderr


def test_wait_prints_each_entry_once_in_journal_order(tmp_path: Path) -> None:
    """The follower prints its lines in batches: what it prints is still one line per shown
    journal entry, in the journal's order, as the plain renderer words it."""
    write_workspace(tmp_path, 12, config="CodeDeployDefault.AllAtOnce")
    done = create(tmp_path, make_revision(tmp_path, "v1"), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    db = sqlite3.connect(tmp_path / ".deploydeck" / "state.db")
    (deployment_id,) = db.execute("SELECT id FROM deployments").fetchone()
    rows = db.execute(
        "SELECT kind, deployment_id, time, payload FROM journal WHERE deployment_id=? ORDER BY seq",
        (deployment_id,),
    ).fetchall()
    db.close()
    expected: list[str] = []
    renderer = PlainRenderer(expected.append)
    for row in rows:
        renderer.render(ev.decode(*row))
    printed = [line for line in done.stdout.splitlines() if line[9:].startswith(deployment_id)]
    assert len(expected) > 12 * 8
    assert printed == expected
