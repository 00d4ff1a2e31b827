"""The JSON-lines protocol between the engine and an agent process on a remote host.

The engine starts `python3 -m <agent package> run` and writes one command (a JSON object) on a
single line of its stdin. The agent answers on stdout with one JSON object per line: progress
messages (`script_started`, `output`, `script_finished`, `note`) as they happen, then exactly one
`{"type": "result", "result": {...}}`. The engine keeps stdin open while the command runs:
end of input (the engine stopping it, or the SSH session going away), SIGTERM, SIGINT or
SIGHUP cancel the command, and the running script's process group is ended first.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from typing import Any, Dict

from . import AGENT_VERSION, results
from .agent import execute


def _write(message: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve_one(command: Dict[str, Any]) -> int:
    loop = asyncio.get_event_loop()
    task = asyncio.ensure_future(execute(command, _write))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at end of input
        loop.call_soon_threadsafe(task.cancel)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        result = await task
    except asyncio.CancelledError:
        result = results.CommandResult(
            command.get("command", "?"),
            results.FAILED,
            error_code=results.UNKNOWN_ERROR,
            message="stopped on request; the running script's process group was ended",
        )
    _write({"type": "result", "result": result.to_dict()})
    return 0


def main(argv: list) -> int:
    if argv[:1] == ["version"]:
        _write({"type": "version", "agent": AGENT_VERSION, "python": sys.version.split()[0]})
        return 0
    if argv[:1] != ["run"]:
        sys.stderr.write("usage: python3 -m <agent> run|version  (a JSON command on stdin)\n")
        return 2
    line = sys.stdin.readline()
    try:
        command = json.loads(line)
    except ValueError as error:
        sys.stderr.write("agent: the command is not valid JSON: %s\n" % error)
        return 2
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_serve_one(command))
    finally:
        loop.close()
