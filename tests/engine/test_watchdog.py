"""The runner's watchdog, driven as a runner drives it: real process groups, a real watchdog
process, and the runner's death played by closing the pipe without a goodbye."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from engine.deployments.watchdog import Watchdog
from engine.host.processes import HOOK_RUN_VARIABLE
from tests.host.harness import pid_alive

# The leader backgrounds a sleep in its group and one in a session of its own, then exits:
# only the marker in their environment ties the second to the hook run.
LEFT_BEHIND = """
sleep 300 & echo $! > "$1/in_group"
setsid sleep 300 & echo $! > "$1/own_session"
"""


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + 60  # generous: the machine is shared
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_group(tmp_path: Path, name: str) -> tuple[int, list[int]]:
    """A hook-like process group that has already lost its leader; its two survivors' pids."""
    folder = tmp_path / name
    folder.mkdir()
    env = dict(os.environ, **{HOOK_RUN_VARIABLE: f"{os.getpid()}-{name}"})
    leader = subprocess.Popen(
        ["sh", "-c", LEFT_BEHIND, "sh", str(folder)], env=env, start_new_session=True
    )
    assert leader.wait() == 0
    files = [folder / "in_group", folder / "own_session"]
    wait_for(lambda: all(f.exists() and f.read_text().strip() for f in files), "the pid files")
    return leader.pid, [int(f.read_text()) for f in files]


def die(watchdog: Watchdog) -> None:
    """The runner dies: its end of the pipe closes without the goodbye."""
    watchdog.pipe.close()
    os.waitpid(watchdog.pid, 0)  # the watchdog ends what is listed, then exits


def test_runner_dies_after_a_hooks_leader_exited(tmp_path: Path) -> None:
    """The runner dies after a hook's leader exited, leaving a process in its group and one in
    a session of its own -> the watchdog reads the run's marker from the group's survivor and
    ends both."""
    watchdog = Watchdog(grace_seconds=1.0)
    pgid, left = start_group(tmp_path, "hook")
    watchdog.watch(pgid)  # outside an event loop: sent at once
    die(watchdog)
    wait_for(lambda: not any(pid_alive(p) for p in left), "the hook's survivors to end")


def test_lines_of_one_loop_pass_are_sent_at_its_end(tmp_path: Path) -> None:
    """A group watched and forgotten in one loop pass, another watched in it -> the watchdog
    is told only of the second, once the pass is over, and ends only that one."""
    watchdog = Watchdog(grace_seconds=1.0)
    forgotten, forgotten_pids = start_group(tmp_path, "forgotten")
    watched, watched_pids = start_group(tmp_path, "watched")

    async def one_pass() -> None:
        watchdog.watch(forgotten)
        watchdog.watch(watched)
        watchdog.forget(forgotten)
        assert watchdog._told == {watched: True}  # nothing written during the pass
        await asyncio.sleep(0)
        assert watchdog._told == {}

    asyncio.run(one_pass())
    die(watchdog)
    wait_for(lambda: not any(pid_alive(p) for p in watched_pids), "the watched group to end")
    try:
        assert all(pid_alive(p) for p in forgotten_pids)
    finally:
        for pid in forgotten_pids:
            os.kill(pid, 9)
