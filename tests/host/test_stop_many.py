"""Many hooks stopped together, for real: every process they started ends, each hook's log says
it was stopped, and the whole stop reads /proc a few times, not once per hook."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.host import processes
from engine.host.hooks import run_script
from engine.host.logs import ScriptsLog
from tests.host.harness import hook, write_tree

HOOKS = 50
# a background child in the script's group, and an orphan in a session of its own (found by
# the hook run's marker only)
BODY = (
    "#!/bin/sh\nsleep 300 &\necho $! > child.pid\n"
    "(setsid sleep 301 & echo $! > orphan.pid)\nsleep 302\n"
)
STOPPED = "Stopped; ending the script's process group"


def carrying(token: str) -> dict[int, int]:
    """pid -> process group of every live process whose environment holds `token` (each one
    a hook started inherits it): a reused pid can neither hide one nor pose as one."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if fields[0] != "Z" and token.encode() in environ.read():
                    found[int(entry)] = int(fields[2])
        except (OSError, IndexError):
            continue
    return found


def start_hooks(
    tmp_path: Path, token: str, bodies: list[str], kill_grace: float = 5
) -> list[asyncio.Future]:
    tasks = []
    for n, body in enumerate(bodies):
        folder = tmp_path / str(n)
        write_tree(folder / "archive", {"s.sh": (body, 0o755)})
        tasks.append(
            asyncio.ensure_future(
                run_script(
                    hook("s.sh"),
                    event="ApplicationStart",
                    index=0,
                    archive_dir=str(folder / "archive"),
                    logs_dir=str(folder),
                    env=dict(os.environ, STOP_MANY_TEST=token),
                    log=ScriptsLog(str(folder / "scripts.log"), "d-1", None),
                    kill_grace=kill_grace,
                )
            )
        )
    return tasks


async def all_started(tmp_path: Path, count: int) -> None:
    """Until each hook wrote the pids of its child and its orphan."""
    files = [
        tmp_path / str(n) / "archive" / name
        for n in range(count)
        for name in ("child.pid", "orphan.pid")
    ]
    while not all(f.exists() and f.read_text().strip() for f in files):
        await asyncio.sleep(0.05)


def count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scans: list[int] = []
    real = processes._read_process_table

    def counted() -> dict:
        scans.append(1)
        return real()

    monkeypatch.setattr(processes, "_read_process_table", counted)
    return scans


async def stop_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Start HOOKS hooks, stop them all at once; the /proc scans the stop made."""
    token = secrets.token_hex(8)
    tasks = start_hooks(tmp_path, token, [BODY] * HOOKS)
    await all_started(tmp_path, HOOKS)
    assert len(carrying(token)) >= 3 * HOOKS  # script, child and orphan of each
    scans = count_scans(monkeypatch)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert carrying(token) == {}
    for n in range(HOOKS):
        assert STOPPED in (tmp_path / str(n) / "scripts.log").read_text()
    return scans


async def test_hooks_stopped_together_leave_nothing_and_share_their_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 hooks with a background child and a setsid orphan each, stopped at once: none of
    their 150 processes is left, and /proc is scanned a few times for all of them."""
    monkeypatch.setattr(processes, "WAKE_SECONDS", 3600.0, raising=False)  # rounds by events only
    scans = await stop_together(tmp_path, monkeypatch)
    # before the signals, then once all were seen exiting (and once more if one of them forked
    # just before it died)
    assert 1 <= len(scans) <= 3, len(scans)


async def test_without_pidfds_a_stop_polls_and_still_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pidfds are missing (Python 3.8, old kernels), the ending polls /proc instead."""
    monkeypatch.setattr(processes, "_pidfd_open", None, raising=False)
    await stop_together(tmp_path, monkeypatch)


async def test_more_processes_than_pidfds_are_waited_for_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 processes and 8 pidfds at a time: each is waited for as others' pidfds close."""
    monkeypatch.setattr(processes, "PIDFD_BUDGET", 8, raising=False)
    monkeypatch.setattr(processes, "WAKE_SECONDS", 3600.0, raising=False)
    scans = await stop_together(tmp_path, monkeypatch)
    assert len(scans) <= 3, len(scans)


async def test_a_hook_ignoring_sigterm_holds_only_its_own_stop(tmp_path: Path) -> None:
    """One of 20 hooks stopped together ignores SIGTERM: the other 19 end without waiting
    for its grace period, and it is killed when its own caller gives up waiting."""
    token = secrets.token_hex(8)
    stubborn = (
        "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > child.pid\n"
        "echo none > orphan.pid\nwhile :; do sleep 1; done\n"  # no orphan: all in its group
    )
    tasks = start_hooks(tmp_path, token, [stubborn] + [BODY] * 19, kill_grace=3600)
    await all_started(tmp_path, 20)
    stubborn_group = int((tmp_path / "0" / "archive" / "child.pid").read_text())
    stubborn_group = carrying(token)[stubborn_group]
    for task in tasks:
        task.cancel()
    while not all(task.done() for task in tasks[1:]):
        await asyncio.sleep(0.05)
    assert not tasks[0].done()  # still in its hour of grace
    assert set(carrying(token).values()) == {stubborn_group}
    tasks[0].cancel()  # a second stop: what is left is killed at once
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert carrying(token) == {}


def test_a_process_group_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    """end_process_group on a group ignoring SIGTERM -> SIGKILL after the grace, "killed"."""
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300 & wait"], start_new_session=True)
    try:
        while len(processes.group_members(proc.pid)) < 2:  # the trap is set before the fork
            time.sleep(0.01)
        how = asyncio.run(processes.end_process_group(proc.pid, 0.2))
        assert how == "killed"
        assert proc.wait() == -signal.SIGKILL
        assert processes.group_members(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_second_stop_before_the_first_signal_kills_and_still_logs(tmp_path: Path) -> None:
    """A stop, then another before the reaper sent the first SIGTERM -> SIGKILL at once, and
    the hook's log still says it was stopped."""
    token = secrets.token_hex(8)
    (task,) = start_hooks(tmp_path, token, [BODY])
    await all_started(tmp_path, 1)
    task.cancel()
    await asyncio.sleep(0)  # the hook's stop has joined the reaper, whose round comes next
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 60  # SIGKILLed: gone once the kernel has ended them
    while carrying(token) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert carrying(token) == {}
    assert STOPPED in (tmp_path / "0" / "scripts.log").read_text()
