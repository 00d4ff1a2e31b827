"""store.pid_alive: whether a deployment's engine process still runs, read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from engine.store import _pid_alive_portable, pid_alive


def test_a_running_process_is_alive_and_an_ended_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid) and _pid_alive_portable(child.pid)
        assert pid_alive(os.getpid())
    finally:
        child.kill()
    # killed, not yet reaped: a zombie has exited, so it is not alive
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not pid_alive(child.pid) and not _pid_alive_portable(child.pid)
    child.wait()
    assert not pid_alive(child.pid) and not _pid_alive_portable(child.pid)
    assert not pid_alive(None) and not pid_alive(0)


def test_a_command_name_with_spaces_and_parentheses_is_read_past() -> None:
    name = "a) b (Z c"  # what a naive split of /proc/PID/stat would misread as a zombie
    renamed = (
        f"import ctypes, time; ctypes.CDLL(None).prctl(15, {name!r}.encode(), 0, 0, 0); "
        "print(1, flush=True); time.sleep(30)"
    )
    with subprocess.Popen([sys.executable, "-c", renamed], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline()
            with open(f"/proc/{child.pid}/stat", "rb") as stat:
                assert name.encode() in stat.read()
            assert pid_alive(child.pid)
        finally:
            child.kill()
