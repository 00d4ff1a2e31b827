"""A runner's watchdog: if the runner dies, it ends the hooks and trigger commands it left.

A local instance's hooks run as children of the runner, which enforces their timeouts; a
runner killed with SIGKILL would leave them running with no timeout at all. So each runner
starts one small watchdog process (standard library only, its own session) and tells it over
a pipe, one line each, which process groups it starts (`+ PGID`) and which have ended
(`- PGID`). When the pipe closes without a goodbye (`.`), the runner has died: the watchdog
ends every group still listed the way a stop does (SIGTERM, a grace period, SIGKILL, with the
groups opened under it and the processes carrying the hook run's DEPLOYDECK_HOOK_RUN value)
and exits. SSH instances need none of this: their remote agent ends its hooks when the
engine's connection ends or goes quiet.

`python -m engine.deployments.watchdog --grace SECONDS --runner PID`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import psutil

from engine.host.processes import HOOK_RUN_VARIABLE, end_process_group

GOODBYE = b".\n"  # the runner ends normally: nothing is ended
CLOSE_WAIT_SECONDS = 5.0


class Watchdog:
    """The runner's side: starts the watchdog process and tells it about process groups.
    Telling it costs one short write to a pipe per group; a watchdog that is gone is noted
    once and otherwise ignored (the deployment goes on without it)."""

    def __init__(self, grace_seconds: float) -> None:
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.deployments.watchdog",
                "--grace",
                str(grace_seconds),
                "--runner",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the runner's group must not reach it
        )

    def watch(self, pgid: int) -> None:
        self._send(b"+ %d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self._send(b"- %d\n" % pgid)

    def close(self) -> None:
        """The runner ends normally: the watchdog exits without ending anything."""
        process, self.process = self.process, None
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(GOODBYE)
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(CLOSE_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _send(self, line: bytes) -> None:
        process = self.process
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(line)
            process.stdin.flush()
        except OSError as error:
            print(
                f"deploydeck runner: its watchdog is gone ({error}); hooks will not be ended "
                "if this runner dies",
                file=sys.stderr,
                flush=True,
            )
            self.process = None


def hook_run_marker(pid: int) -> str:
    """The DEPLOYDECK_HOOK_RUN value in a process's environment ("" if none or unreadable)."""
    try:
        return psutil.Process(pid).environ().get(HOOK_RUN_VARIABLE, "")
    except (psutil.Error, OSError):
        return ""


def serve(stream, grace_seconds: float, runner: int) -> int:
    """Read the runner's lines until the pipe closes; then end what is still listed."""
    watched: dict[int, str] = {}  # pgid -> its hook run's marker
    for line in stream:
        if line == GOODBYE:
            return 0
        sign, _, number = line.decode("ascii", "replace").strip().partition(" ")
        if not number.isdigit():
            continue
        if sign == "+":
            watched[int(number)] = hook_run_marker(int(number))
        elif sign == "-":
            watched.pop(int(number), None)
    if not watched:
        return 0
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
