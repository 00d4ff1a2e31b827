"""The agent's logs: the per-deployment scripts.log, the deployments log, and an output tail.

scripts.log records are `YYYY-MM-DD HH:MM:SS <message>`, the deployments log's are
`[YYYY-MM-DD HH:MM:SS.mmm] [<deployment id>]<message stripped>` (reference agent §3.6).
"""

from __future__ import annotations

import collections
import os
import time
from typing import Deque, Optional

DEPLOYMENTS_LOG_MAX_BYTES = 64 * 1024 * 1024
DEPLOYMENTS_LOG_KEEP = 8
DEFAULT_TAIL_CHARS = 8192


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))


def _stamp_ms(now: float) -> str:
    return "%s.%03d" % (_stamp(now), int((now % 1) * 1000))


class ScriptsLog:
    """Appends records to one deployment's scripts.log and mirrors them to the deployments log."""

    def __init__(self, path: str, deployment_id: str, deployments_log: Optional[str]) -> None:
        self.path = path
        self.deployment_id = deployment_id
        self.deployments_log = deployments_log
        self._file = None  # opened on first record: events without scripts create no file
        self._deployments = None

    def write(self, message: str) -> None:
        now = time.time()
        if self._file is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._file.write("%s %s" % (_stamp(now), message))
        self._file.flush()
        if self.deployments_log:
            if self._deployments is None:
                self._deployments = open_deployments_log(self.deployments_log)
            self._deployments.write(_deployments_line(self.deployment_id, message, now))
            self._deployments.flush()

    def close(self) -> None:
        for handle in (self._file, self._deployments):
            if handle is not None:
                handle.close()
        self._file = self._deployments = None


def open_deployments_log(path: str):
    """The deployments log for appending, rotated first when it has grown too big."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        if os.path.getsize(path) >= DEPLOYMENTS_LOG_MAX_BYTES:
            _rotate(path)
    except OSError:
        pass
    return open(path, "a", encoding="utf-8", errors="replace")


def _deployments_line(deployment_id: str, message: str, now: float) -> str:
    return "[%s] [%s]%s\n" % (_stamp_ms(now), deployment_id, message.strip())


def _rotate(path: str) -> None:
    for index in range(DEPLOYMENTS_LOG_KEEP - 1, 0, -1):
        older = "%s.%d" % (path, index)
        if os.path.exists(older):
            os.replace(older, "%s.%d" % (path, index + 1))
    os.replace(path, path + ".1")
    stale = "%s.%d" % (path, DEPLOYMENTS_LOG_KEEP)
    if os.path.exists(stale):
        os.remove(stale)


class OutputTail:
    """The last lines of a script's output, whole lines only, bounded by a character budget."""

    def __init__(self, max_chars: int = DEFAULT_TAIL_CHARS) -> None:
        self.max_chars = max_chars
        self._lines: Deque[str] = collections.deque()
        self._chars = 0

    def add(self, line: str) -> None:
        if len(line) > self.max_chars:
            line = "..." + line[-(self.max_chars - 3) :]
        self._lines.append(line)
        self._chars += len(line)
        while self._chars > self.max_chars and self._lines:
            self._chars -= len(self._lines.popleft())

    def text(self) -> str:
        return "".join(self._lines)

    def lines(self, count: int) -> list:
        return [line.rstrip("\n") for line in list(self._lines)[-count:]]
