"""A runner's watchdog: if the runner dies, it ends the hooks and trigger commands it left.

A local instance's hooks run as children of the runner, which enforces their timeouts; a
runner killed with SIGKILL would leave them running with no timeout at all. So each runner
starts one small watchdog process (standard library only, its own session) and tells it over
a pipe, one line each, which process groups it starts (`+ PGID`) and which have ended
(`- PGID`); the lines of one pass of the runner's event loop go in one write. When the pipe
closes without a goodbye (`.`), the runner has died: the watchdog reads each group still
listed for its hook run's DEPLOYDECK_HOOK_RUN value (then, not per hook: most hooks end before
their runner) and ends it the way a stop does (SIGTERM, a grace period, SIGKILL, with the
groups opened under it and the processes carrying that value), and exits. SSH instances need
none of this: their remote agent ends its hooks when the engine's connection ends or goes
quiet.

The runner forks it (it starts at once, named `dd-watchdog` in ps), or starts
`python -m engine.deployments.watchdog --grace SECONDS --runner PID` where it holds threads
a forked child could find holding locks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from typing import IO

from engine.forked import fork, leave_parent, reap_child
from engine.host.processes import HOOK_RUN_VARIABLE, end_process_group, group_members

GOODBYE = b".\n"  # the runner ends normally: nothing is ended
CLOSE_WAIT_SECONDS = 5.0
PROCESS_NAME = b"dd-watchdog"  # its /proc/PID/comm, what ps shows


class Watchdog:
    """The runner's side: starts the watchdog process and tells it about process groups.
    The lines told in one pass of the event loop go to the pipe in one write at its end (a
    group that starts and ends within it is not told at all); a watchdog that is gone is
    noted once and otherwise ignored (the deployment goes on without it)."""

    def __init__(self, grace_seconds: float) -> None:
        runner = os.getpid()
        if threading.active_count() == 1 and hasattr(os, "fork"):
            self.pid, self.pipe = _fork_watchdog(grace_seconds, runner)
        else:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engine.deployments.watchdog",
                    "--grace",
                    str(grace_seconds),
                    "--runner",
                    str(runner),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the runner's group must not reach it
            )
            assert process.stdin is not None
            self.pid, self.pipe = process.pid, process.stdin
        self._open = True
        self._told: dict[int, bool] = {}  # pgid -> watched (True) or forgotten, not sent yet
        self._flush_scheduled = False

    def watch(self, pgid: int) -> None:
        self._tell(pgid, True)

    def forget(self, pgid: int) -> None:
        if self._told.get(pgid) is True:
            del self._told[pgid]  # never sent: nothing to take back
        else:
            self._tell(pgid, False)

    def flush(self) -> None:
        """Send what this loop pass told (at once outside an event loop)."""
        self._flush_scheduled = False
        told, self._told = self._told, {}
        if told:
            self._send(b"".join(b"%s %d\n" % (b"+" if w else b"-", g) for g, w in told.items()))

    def _tell(self, pgid: int, watched: bool) -> None:
        self._told.pop(pgid, None)  # keeps the order of what is told
        self._told[pgid] = watched
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def hang_up(self) -> None:
        """Say goodbye: the watchdog exits without ending anything (close waits for it)."""
        self.flush()
        if self._open:
            with contextlib.suppress(OSError):
                self.pipe.write(GOODBYE)
            self._open = False
        with contextlib.suppress(OSError):
            self.pipe.close()

    def close(self) -> None:
        """The runner ends normally: the watchdog exits without ending anything, and is
        waited for (up to CLOSE_WAIT_SECONDS, then killed)."""
        self.hang_up()
        if self.pid:
            reap_child(self.pid, CLOSE_WAIT_SECONDS)
            self.pid = 0

    def _send(self, line: bytes) -> None:
        if not self._open:
            return
        try:
            self.pipe.write(line)
            self.pipe.flush()
        except OSError as error:
            print(
                f"deploydeck runner: its watchdog is gone ({error}); hooks will not be ended "
                "if this runner dies",
                file=sys.stderr,
                flush=True,
            )
            self._open = False


def _fork_watchdog(grace_seconds: float, runner: int) -> tuple[int, IO[bytes]]:
    """The watchdog as a forked child in a session of its own, reading a pipe as stdin; it
    keeps no other descriptor of the runner's (a database, a client's socket)."""
    read, write = os.pipe()
    pid = fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(read, 0)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            leave_parent((), new_session=True)  # a signal to the runner's group must not reach it
            # its own streams on 1 and 2: the parent's objects may wrap descriptors closed above
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:
                comm.write(PROCESS_NAME)
            code = serve(os.fdopen(0, "rb"), grace_seconds, runner)
        finally:
            with contextlib.suppress(BaseException):
                sys.stderr.flush()
            os._exit(code)
    os.close(read)
    return pid, os.fdopen(write, "wb")


def hook_run_marker(pid: int) -> str:
    """The DEPLOYDECK_HOOK_RUN value in a process's environment ("" if none or unreadable)."""
    import psutil  # only once a runner has died: not in every runner's start-up

    try:
        return psutil.Process(pid).environ().get(HOOK_RUN_VARIABLE, "")
    except (psutil.Error, OSError):
        return ""


def group_marker(pgid: int) -> str:
    """The hook run's marker of a group: its leader's, or (the leader gone) any member's."""
    for pid in [pgid] + [p for p in group_members(pgid) if p != pgid]:
        marker = hook_run_marker(pid)
        if marker:
            return marker
    return ""


def serve(stream: IO[bytes], grace_seconds: float, runner: int) -> int:
    """Read the runner's lines until the pipe closes; then end what is still listed."""
    listed: dict[int, None] = {}  # the pgids, in the order told
    for line in stream:
        if line == GOODBYE:
            return 0
        sign, _, number = line.decode("ascii", "replace").strip().partition(" ")
        if not number.isdigit():
            continue
        if sign == "+":
            listed[int(number)] = None
        elif sign == "-":
            listed.pop(int(number), None)
    if not listed:
        return 0
    watched = {pgid: group_marker(pgid) for pgid in listed}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(
        f"{stamp} deploydeck watchdog: runner {runner} died; ending the process groups it "
        f"left running: {' '.join(map(str, sorted(watched)))}",
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(_end_all(watched, grace_seconds))
    return 0


async def _end_all(watched: dict[int, str], grace_seconds: float) -> None:
    await asyncio.gather(
        *(end_process_group(pgid, grace_seconds, marker=marker) for pgid, marker in watched.items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.deployments.watchdog")
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--runner", type=int, default=0)
    args = parser.parse_args(argv)
    return serve(sys.stdin.buffer, args.grace, args.runner)


if __name__ == "__main__":
    sys.exit(main())
