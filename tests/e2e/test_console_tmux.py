"""The real console in a real terminal (tmux), driven only by keystrokes, as a user would:
deploy a revision from the new-deployment screen, stop it while a hook hangs, roll back, quit.

Each step waits for its text on the screen (polling `capture-pane`, with a timeout), then the
files on disk are checked: every instance runs the previous revision again, and no hook
process is left running.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine
from engine.store import Store, pid_alive
from engine.workspace import load_workspace
from tests.conftest import require_tool
from tests.engine.fleet import live_pids, make_revision, tree_digest, write_workspace

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 45
INSTANCES = ("i01", "i02", "i03", "i04")
KEY_GAP = 0.05  # between keystrokes, so none is dropped or merged


class Terminal:
    """A tmux session on a private socket; one key per send-keys call."""

    def __init__(self, folder: Path) -> None:
        self.socket = f"deploydeck-e2e-{uuid.uuid4().hex[:12]}"
        self.config = folder / "tmux.conf"
        self.status = folder / "exit-status"
        self.socket_path: Path | None = None
        self.config.write_text(
            "set -g escape-time 0\nset -g remain-on-exit on\nset -g history-limit 100\n"
        )
        # COLUMNS and LINES (pytest-xdist sets 80x24) would override the pane's real size
        leave_out = ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")
        self.env = {k: v for k, v in os.environ.items() if k not in leave_out}
        self.env["TEXTUAL_ANIMATIONS"] = "none"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def start(self, argv: list[str], cwd: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(cwd),
            "-e",
            "TEXTUAL_ANIMATIONS=none",
            # The shell records the exit status: tmux may be slow to reap a pane's process.
            f"{shlex.join(argv)}; echo $? > {shlex.quote(str(self.status))}",
        )
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def key(self, name: str) -> None:
        """One key by its tmux name (Enter, Escape, BTab, Down) or one literal character."""
        literal = len(name) == 1
        self.tmux("send-keys", "-t", "console", *(["-l", name] if literal else [name]))
        time.sleep(KEY_GAP)

    def type(self, text: str) -> None:
        for char in text:
            self.key(char)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", "console", "-p")

    def exit_status(self) -> str | None:
        """None while the program runs, then its exit status."""
        text = self.status.read_text().strip() if self.status.exists() else ""
        return text or None  # not yet, or the shell is writing it

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "console", "#{pane_dead}").strip() == "1"

    def wait_for(
        self, *texts: str, where: Callable[[str], str] = lambda s: s, timeout: float = 30
    ) -> str:
        """The screen once every text is on it (in the part `where` picks)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in where(screen) for text in texts):
                return screen
            if self.dead():
                break
            time.sleep(0.1)
        raise AssertionError(f"waited {timeout}s for {texts!r}; the screen:\n{screen}")

    def wait_match(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of a regular expression on the screen, once there is one."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            found = re.search(pattern, screen, re.MULTILINE)
            if found:
                return found
            if self.dead():
                break
            time.sleep(0.1)
        raise AssertionError(f"waited {timeout}s for /{pattern}/; the screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=10,
            check=False,
        )
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)  # kill-server leaves the socket file


def header(screen: str) -> str:
    """The deployment screen's first line: id, group, config, revision, status, elapsed."""
    return screen.splitlines()[0] if screen else ""


def history_row(screen: str, deployment_id: str) -> str:
    """The dashboard's history row of a deployment, or ''."""
    for line in screen.splitlines():
        row = line.strip().strip("│").strip()
        if row.split()[:1] == [deployment_id]:
            return row
    return ""


def deploy_first(path: Path, revision: Path) -> str:
    """The previous revision, deployed with the engine (process mode, as the CLI does)."""

    async def run() -> str:
        engine = Engine(load_workspace(path).unwrap())
        try:
            created = await engine.create_deployment(
                CreateDeploymentRequest("app", "fleet", revision_path=revision)
            )
            done = await engine.wait(created.id, timeout=60)
            assert done.status == "Succeeded", done
            return done.id
        finally:
            await engine.aclose()

    return asyncio.run(run())


def running_v1(tmp_path: Path, config: str) -> tuple[Path, Path, Path, Path, str]:
    """A workspace whose instances run v1, deployed with the engine; i02's ApplicationStart
    hangs for v2 only, so v2 can be stopped there. (folder, deploydeck.yml, v1, v2, v1's
    deployment id)."""
    require_tool("tmux")
    folder = tmp_path / "ws"
    folder.mkdir()
    v1 = make_revision(folder / "revisions", "v1")
    v2 = make_revision(folder / "revisions", "v2")
    path = write_workspace(
        folder, len(INSTANCES), config=config, env={"i02": {"HANG_ON": "ApplicationStart@v2"}}
    )
    return folder, path, v1, v2, deploy_first(path, v1)


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def test_deploy_stop_and_roll_back_in_tmux(tmp_path: Path) -> None:
    folder, path, v1, v2, first = running_v1(tmp_path, "CodeDeployDefault.HalfAtATime")
    pid_file = folder / "pids.txt"
    store = Store(folder / ".deploydeck" / "state.db")
    v1_sha = store.get_deployment(first).revision.short()

    term = Terminal(tmp_path)
    try:
        term.start([sys.executable, "-m", "tui.cli", "console", "--workspace", str(path)], REPO)

        # The dashboard, with the first deployment in the history.
        term.wait_for("deployment history", first, "✔ Succeeded")

        # n: the new-deployment form; the revision list offers the registered v1 and a path.
        term.key("n")
        term.wait_for("New deployment", "✔ appspec valid", f"revision {v1_sha} v1")
        term.key("Enter")
        term.wait_for("a folder or archive path…")
        term.key("Down")
        term.key("Enter")
        term.wait_for("path to a revision folder or tar/tgz/zip")
        term.key("Tab")
        term.type(str(v2))
        term.wait_for("revisions/v2")
        # The check and the plan follow the path: v2, in two batches of two.
        v2_sha = term.wait_match(r"revision ([0-9a-f]{12}) v2 ")[1]
        assert v2_sha != v1_sha
        term.wait_for(f"✔ appspec valid (directory, sha256 {v2_sha})", "batch 2 (2): i03, i04")

        # Deploy…: back from the path box past the first field wraps to Cancel, then Deploy.
        for _ in range(3):
            term.key("BTab")
        term.key("Enter")
        term.wait_for(
            "Start this deployment?", f"Deploy revision {v2_sha} v2 to app/fleet", "Deploy (y)"
        )
        term.key("y")

        # It runs: i01 succeeds, i02 hangs in ApplicationStart, batch 2 waits.
        term.wait_for(f"revision {v2_sha} v2", "◌ InProgress", where=header)
        deployment = term.wait_match(rf"\A (d-[0-9A-Z]+)  .* app/fleet .* {v2_sha} v2")[1]
        assert deployment != first
        term.wait_for("✔ Succeeded", "◌ InProgress", "◌ run", "not started", "◷ Pending")
        deadline = time.monotonic() + 30
        while len(live_pids(pid_file)) < 2:
            assert time.monotonic() < deadline, "i02's hook never started hanging"
            time.sleep(0.1)
        hung = live_pids(pid_file)

        # S, y: stopped; the hanging hook is ended, i02 Failed, batch 2 Skipped.
        term.key("S")
        term.wait_for(f"Stop {deployment}?", "(i02)", "(i03, i04)", "Stop (y)")
        term.key("y")
        term.wait_for("■ Stopped", where=header)
        term.wait_for("✖ Failed", "- Skipped", "✖ fail", "MANUAL_STOP")
        assert wait_gone(hung) == [], f"hook processes still running: {hung}"

        # R, y: a new deployment of v1, linked from the stopped one; l opens it.
        term.key("R")
        term.wait_for(
            f"Roll back {deployment}?", f"redeploys revision {v1_sha} v1", "Roll back (y)"
        )
        term.key("y")
        rollback = term.wait_match(r"rolled back by (d-[0-9A-Z]+) \(l to open\)")[1]
        term.key("l")
        term.wait_for(rollback, f"revision {v1_sha} v1", "✔ Succeeded", where=header, timeout=60)
        term.wait_for(f"rolls back {deployment}", "batch 2")

        # esc, esc: the dashboard, with all three deployments.
        term.key("Escape")
        term.wait_for(deployment, "■ Stopped", where=header)
        term.key("Escape")
        term.wait_for("deployment history")
        # (the dashboard redraws from the store a moment after it is back on top)
        term.wait_for("✔ Succeeded", f"{v1_sha} v1", where=lambda s: history_row(s, rollback))
        term.wait_for("■ Stopped", f"{v2_sha} v2", where=lambda s: history_row(s, deployment))
        term.wait_for("✔ Succeeded", f"{v1_sha} v1", where=lambda s: history_row(s, first))

        # q: nothing runs any more, so the console quits at once (else: stop and quit).
        term.key("q")
        deadline = time.monotonic() + 20
        while (status := term.exit_status()) is None:
            if "Quit with a deployment running?" in term.screen():
                term.key("s")
            assert time.monotonic() < deadline, f"the console did not quit:\n{term.screen()}"
            time.sleep(0.1)
        assert status == "0", f"the console exited with {status}:\n{term.screen()}"
    finally:
        term.kill()
        for pid in live_pids(pid_file):  # only if the test failed half-way: our hung hooks
            os.kill(pid, signal.SIGKILL)

    # On disk: the stopped deployment and its rollback as shown, every instance back on v1.
    stopped = store.get_deployment(deployment)
    assert stopped.status == "Stopped"
    assert stopped.revision.short() == v2_sha
    assert stopped.rollback.rollback_deployment_id == rollback
    rolled = store.get_deployment(rollback)
    assert rolled.status == "Succeeded"
    assert rolled.revision.short() == v1_sha
    assert rolled.rollback.rollback_triggering_deployment_id == deployment
    expected = tree_digest(v1 / "site")
    assert expected and expected != tree_digest(v2 / "site")
    for name in INSTANCES:
        installed = folder / ".deploydeck" / "instances" / name / "fs" / "srv" / "app"
        assert tree_digest(installed) == expected, name
        assert (installed / "version.txt").read_text() == "v1\n"

    # No hook is left: the pid file names the hung hook's shell and sleep, both gone.
    assert len(pid_file.read_text().split()) == 2
    assert live_pids(pid_file) == []
    # And no engine process: every runner that took charge has exited.
    runners = [
        e.event.pid
        for d in (first, deployment, rollback)
        for e in store.journal(d)
        if isinstance(e.event, ev.EngineAttached)
    ]
    assert len(runners) == 3
    assert wait_gone(runners) == [], f"engine processes still running: {runners}"
    store.close()


def test_a_small_terminal_and_fast_keys_in_tmux(tmp_path: Path) -> None:
    """80x24 while a deployment runs: the history shows its rows, Enter and Esc alternating
    0.12 s apart never kill the console, the form fits, and quitting says what a stop does."""
    folder, path, _, v2, first = running_v1(tmp_path, "CodeDeployDefault.OneAtATime")
    pid_file = folder / "pids.txt"

    async def start_v2() -> str:
        engine = Engine(load_workspace(path).unwrap())
        try:
            created = await engine.create_deployment(
                CreateDeploymentRequest("app", "fleet", revision_path=v2)
            )
            return created.id
        finally:
            await engine.aclose()  # its runner process carries on

    running = asyncio.run(start_v2())
    term = Terminal(tmp_path)
    try:
        term.start(
            [sys.executable, "-m", "tui.cli", "console", "--workspace", str(path)],
            REPO,
            width=80,
            height=24,
        )
        term.wait_for("deployment history")
        term.wait_for("◌ InProgress", where=lambda s: history_row(s, running))
        term.wait_for("✔ Succeeded", where=lambda s: history_row(s, first))
        for press in range(40):
            term.key("Enter" if press % 2 == 0 else "Escape")
            time.sleep(0.12 - KEY_GAP)
        assert not term.dead() and term.exit_status() is None, term.screen()
        term.key("Escape")
        term.key("Escape")
        term.wait_for("deployment history")
        # a letter right after Escape would read as alt+letter, one escape sequence
        time.sleep(0.5)
        term.key("n")
        term.wait_for("New deployment", "✔ appspec valid", "Deploy…", "Cancel")
        term.key("Escape")
        term.wait_for("deployment history")
        time.sleep(0.5)  # (as above: Enter right after Escape would read as alt+enter)
        term.key("Enter")  # the newest: the running one
        term.wait_for(running, "◌ InProgress", where=header)
        term.key("q")
        term.wait_for("Quit with a deployment running?", "no rollback")
        term.key("s")  # stop and quit
        deadline = time.monotonic() + 30
        while (status := term.exit_status()) is None:
            assert time.monotonic() < deadline, f"the console did not quit:\n{term.screen()}"
            time.sleep(0.1)
        assert status == "0", f"the console exited with {status}:\n{term.screen()}"
    finally:
        term.kill()
    store = Store(folder / ".deploydeck" / "state.db")
    try:
        deadline = time.monotonic() + 60
        while store.get_deployment(running).status == "InProgress":
            assert time.monotonic() < deadline, "the stop never ended the deployment"
            time.sleep(0.2)
        assert store.get_deployment(running).status == "Stopped"
        assert store.get_deployment(running).rollback.rollback_deployment_id is None
    finally:
        store.close()
        assert wait_gone(live_pids(pid_file)) == []
