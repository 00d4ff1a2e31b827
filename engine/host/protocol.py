"""The JSON-lines protocol between the engine and an agent process on a remote host.

`python3 <agent> serve` reads commands, one JSON object per line of its stdin, and runs them
one after another: for each it writes progress messages (`script_started`, `script_spawned`,
`output`, `script_finished`, `note`) as they happen, then exactly one
`{"type": "result", "result": {...}}`, one JSON object per line of stdout. One agent process
serves a host for a whole deployment. `python3 <agent> run` does the same for a single command.

End of input while a command runs (the engine stopping it, or the SSH session going away),
SIGTERM, SIGINT or SIGHUP cancel it: the running script's process group is ended first, the
result says the command was stopped, and the agent exits.

`serve --idle-exit SECONDS` also treats SECONDS without any input as the end of input: the
engine then sends an empty line every few seconds, so when the network between them fails
silently (no end of input ever arrives) the agent still ends what it runs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any, Dict, Optional

from . import AGENT_VERSION, results
from .agent import execute


def _write(message: Dict[str, Any]) -> None:
    """One message to the engine; dropped when the engine is gone (its end of input follows)."""
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # ValueError: stdout was closed after a broken pipe
        pass


def _stopped(command: Dict[str, Any]) -> results.CommandResult:
    return results.CommandResult(
        command.get("command", "?"),
        results.FAILED,
        error_code=results.UNKNOWN_ERROR,
        message="stopped on request; the running script's process group was ended",
    )


async def _serve(single: bool, idle_exit: Optional[float] = None) -> int:
    """Run commands from stdin until its end (or one command when `single`); empty lines are
    heartbeats. With `idle_exit`, that long without input counts as the end of input."""
    loop = asyncio.get_event_loop()
    lines: asyncio.Queue = asyncio.Queue()
    last_input = [time.monotonic()]

    def read_stdin() -> None:
        for line in sys.stdin:
            last_input[0] = time.monotonic()
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)  # end of input

    async def watch_idle(seconds: float) -> None:
        while time.monotonic() - last_input[0] < seconds:
            await asyncio.sleep(min(1.0, seconds / 4))
        sys.stderr.write("agent: no input for %g seconds; ending as if input ended\n" % seconds)
        lines.put_nowait(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    watchdog = asyncio.ensure_future(watch_idle(idle_exit)) if idle_exit else None
    try:
        return await _run_commands(lines, single)
    finally:
        if watchdog is not None:
            watchdog.cancel()


async def _run_commands(lines: asyncio.Queue, single: bool) -> int:
    loop = asyncio.get_event_loop()
    current: Dict[str, Optional[asyncio.Future]] = {"task": None}
    stop_requested = asyncio.Event()

    def on_signal() -> None:
        stop_requested.set()
        if current["task"] is not None:
            current["task"].cancel()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)

    next_line = asyncio.ensure_future(lines.get())
    while not stop_requested.is_set():
        line = await next_line
        next_line = asyncio.ensure_future(lines.get())
        if line is None:
            return 0
        if not line.strip():
            continue
        try:
            command = json.loads(line)
        except ValueError as error:
            sys.stderr.write("agent: the command is not valid JSON: %s\n" % error)
            return 2
        task = asyncio.ensure_future(execute(command, _write))
        current["task"] = task
        ended = False
        while not task.done():
            await asyncio.wait({task, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if next_line.done() and not task.done():
                arrived = next_line.result()
                if arrived is None:  # end of input: stop this command
                    ended = True
                    task.cancel()
                    await asyncio.wait({task})
                elif not arrived.strip():  # a heartbeat
                    next_line = asyncio.ensure_future(lines.get())
                else:  # one command at a time: a second one waits its turn
                    sys.stderr.write("agent: a command arrived while another was running\n")
                    return 2
        current["task"] = None
        try:
            result = task.result()
        except asyncio.CancelledError:
            result = _stopped(command)
        _write({"type": "result", "result": result.to_dict()})
        if single or ended:
            return 0
    return 0


def main(argv: list) -> int:
    if argv[:1] == ["version"]:
        _write({"type": "version", "agent": AGENT_VERSION, "python": sys.version.split()[0]})
        return 0
    usage = "usage: python3 <agent> serve [--idle-exit SECONDS]|run|version  (JSON on stdin)\n"
    if argv[:1] not in (["run"], ["serve"]):
        sys.stderr.write(usage)
        return 2
    idle_exit = None
    if argv[1:2] == ["--idle-exit"] and argv[0] == "serve":
        try:
            idle_exit = float(argv[2])
        except (IndexError, ValueError):
            sys.stderr.write(usage)
            return 2
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(argv[0] == "run", idle_exit))
    finally:
        loop.close()
