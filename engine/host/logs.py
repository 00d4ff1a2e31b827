"""The agent's logs: the per-deployment scripts.log, the deployments log, and an output tail.

scripts.log records are `YYYY-MM-DD HH:MM:SS <message>`, the deployments log's are
`[YYYY-MM-DD HH:MM:SS.mmm] [<deployment id>]<message stripped>`
(docs/codedeploy-agent.md#hook-output-and-logs). Both are owner-only (0600 files in 0700 folders)
and never hold a secret value: every record passes through the command's Redactor first.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Callable, Deque, Iterable, List, Optional, TextIO

MASK = "***"
LOG_DIR_MODE = 0o700
LOG_FILE_MODE = 0o600
DEPLOYMENTS_LOG_MAX_BYTES = 64 * 1024 * 1024
DEPLOYMENTS_LOG_KEEP = 8
DEFAULT_TAIL_CHARS = 8192


_LAST_STAMP = (-1, "")  # the last second stamped: log lines come many to a second


def _stamp(now: float) -> str:
    global _LAST_STAMP
    second, text = _LAST_STAMP
    if second != int(now):
        second = int(now)
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        _LAST_STAMP = (second, text)
    return text


def _stamp_ms(now: float) -> str:
    return "%s.%03d" % (_stamp(now), int((now % 1) * 1000))


# A multi-line secret (a key) reaches the logs one output line at a time: each of its lines is
# masked too, unless so short that it would mask ordinary text (as the controller does).
MIN_SECRET_LINE = 8


class Redactor:
    """Replaces each secret value, and each long line of a multi-line one, with *** (longer
    ones first, so a secret holding another is masked whole). `encoded` is what a byte stream
    must not be cut inside of."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        pieces = set()
        for secret in secrets:
            if secret:
                pieces.add(secret)
                if "\n" in secret or "\r" in secret:
                    lines = (line.strip() for line in secret.splitlines())
                    pieces.update(line for line in lines if len(line) >= MIN_SECRET_LINE)
        self.secrets = sorted(pieces, key=len, reverse=True)
        self.encoded = [s.encode("utf-8", "surrogateescape") for s in self.secrets]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def make_private_dir(path: str) -> None:
    """Create `path` (and parents) and make it owner-only."""
    os.makedirs(path, mode=LOG_DIR_MODE, exist_ok=True)
    try:
        os.chmod(path, LOG_DIR_MODE)
    except OSError:
        pass  # not ours to change (another user's folder): still write in it


def open_private(path: str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> TextIO:
    """A log file opened for appending text, created (or tightened to) 0600."""
    fd = os.open(path, flags, LOG_FILE_MODE)
    try:
        os.fchmod(fd, LOG_FILE_MODE)
    except OSError:
        pass  # not ours to change (another user's file): still append
    return open(fd, "a", encoding="utf-8", errors="replace")


class ScriptsLog:
    """Appends records to one deployment's scripts.log and mirrors them to the deployments log."""

    def __init__(
        self,
        path: str,
        deployment_id: str,
        deployments_log: Optional[str],
        redact: Optional[Callable[[str], str]] = None,
    ) -> None:
        self.path = path
        self.deployment_id = deployment_id
        self.deployments_log = deployments_log
        self.redact = redact or (lambda text: text)
        self._file: Optional[TextIO] = None  # opened on first record: no scripts, no file
        self._deployments: Optional[TextIO] = None

    def write(self, message: str) -> None:
        self.write_piece(message, continued=False, ends=True)

    def write_piece(self, text: str, continued: bool, ends: bool) -> None:
        """Part of a record: a long output line arrives in pieces; `continued` pieces carry on
        the record before them, and the one that `ends` it closes the deployments log line."""
        now = time.time()
        text = self.redact(text)
        if self._file is None:
            make_private_dir(os.path.dirname(self.path))
            self._file = open_private(self.path)
        self._file.write(text if continued else "%s %s" % (_stamp(now), text))
        self._file.flush()
        if self.deployments_log:
            if self._deployments is None:
                self._deployments = open_deployments_log(self.deployments_log)
            if not continued:
                text = "[%s] [%s]%s" % (_stamp_ms(now), self.deployment_id, text.lstrip())
            self._deployments.write(text.rstrip() + "\n" if ends else text)
            self._deployments.flush()

    def close(self) -> None:
        for handle in (self._file, self._deployments):
            if handle is not None:
                handle.close()
        self._file = self._deployments = None


def open_deployments_log(path: str) -> TextIO:
    """The deployments log for appending, rotated first when it has grown too big."""
    make_private_dir(os.path.dirname(path))
    try:
        if os.path.getsize(path) >= DEPLOYMENTS_LOG_MAX_BYTES:
            _rotate(path)
    except OSError:
        pass
    return open_private(path)


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

    def lines(self, count: int) -> List[str]:
        return [line.rstrip("\n") for line in list(self._lines)[-count:]]
