"""`create-deployment --wait` in a real terminal (tmux): the live view redraws a table of the
fleet while the deployment runs, and leaves the final table and the summary line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.engine.fleet import make_revision, write_workspace

from .test_console_tmux import REPO, Terminal

pytestmark = pytest.mark.e2e


def test_wait_in_a_terminal_draws_the_live_table(tmp_path: Path) -> None:
    """create-deployment --wait at a terminal -> a live table of every instance (status and
    event columns), ending with each Succeeded, the summary line and exit status 0"""
    require_tool("tmux")
    folder = tmp_path / "ws"
    folder.mkdir()
    revision = make_revision(folder / "revisions", "v1")
    path = write_workspace(folder, 3)
    argv = [sys.executable, "-m", "tui.cli", "--workspace", str(path), "create-deployment"]
    argv += ["--application-name", "app", "--deployment-group-name", "fleet"]
    argv += ["--revision", str(revision), "--wait"]
    term = Terminal(tmp_path)
    try:
        term.start(argv, REPO, width=100, height=30)
        screen = term.wait_for("✔ Succeeded  d-", "All 3 instances succeeded")
        assert "instance  batch  status" in screen, screen
        rows = [line for line in screen.splitlines() if line.startswith(("i01", "i02", "i03"))]
        assert len(rows) == 3 and all("✔ Succeeded" in row for row in rows), screen
        deadline = time.monotonic() + 10
        while term.exit_status() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert term.exit_status() == "0", screen
    finally:
        term.kill()
