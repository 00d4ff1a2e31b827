"""Hook scripts, as the CodeDeploy agent runs them (docs/codedeploy-agent.md#hook-scripts), with
three fixes.

Each script runs with stdin closed, in its own process group, with the reference environment
variables. Differences from the reference, each keeping its outcome:
- A timeout or a stop ends the whole process group, the groups opened under it and every
  process still carrying the run's DEPLOYDECK_HOOK_RUN value: SIGTERM, a grace, then SIGKILL.
- Output goes to two capture files that the agent tails, not to pipes: a background child that
  inherits stdout (a server started with `&`) can neither hang the event nor die of SIGPIPE
  later. When the script exits, whatever is left running in its group is reported and its
  capture files are kept so its later output can still be read.
- The working directory is the root of the revision that provides the script (the reference
  inherits the agent's), so scripts can use paths relative to their bundle.
- Output is streamed to the logs in bounded pieces (a very long line in several), so memory
  stays flat whatever a script prints, and secret values are masked in every record.
- With sudo, the variables reach the script through sudo's environment, never its command
  line (which any user can read with ps).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import secrets
import shlex
import stat
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import results
from .logs import OutputTail, Redactor, ScriptsLog, make_private_dir
from .processes import (
    HOOK_RUN_VARIABLE,
    end_process_group,
    groups_empty,
    groups_under,
    note_run_ended,
    note_run_started,
    survivors_after,
)

OutputCallback = Callable[[str, str, float], None]  # (stream, line, time)
SpawnCallback = Callable[[int], None]  # the script's pid, which is also its process group

DEFAULT_KILL_GRACE_SECONDS = 10.0
_POLL_MIN = 0.01
_POLL_MAX = 0.25
_NOTE_GROUPS_SECONDS = 0.5  # how often a runas hook's groups are noted
_READ_CHUNK = 65536
# Longer output lines reach the engine cut to this (scripts.log on the host keeps them whole).
MAX_EMITTED_LINE = 64 * 1024
# Output is handled in pieces of at most this many bytes: a longer line is several pieces.
MAX_PIECE_BYTES = 64 * 1024
# Bytes read from one capture file per poll while the script runs (the rest waits its turn).
PUMP_BUDGET_BYTES = 4 * 1024 * 1024


# What starts this process's scripts when it is not itself (a runner's hook launcher, see
# engine/targets/hook_launcher.py): anything with `usable` and `async start(argv, cwd, env,
# stdout_path, stderr_path)` giving a process with `pid`, `returncode` and `async wait()`.
_launcher = None  # type: Optional[Any]


def use_launcher(launcher: Optional[Any]) -> None:
    global _launcher
    _launcher = launcher


def ruby_join(base: str, relative: str) -> str:
    """Ruby File.join: a leading "/" in `relative` does not make it absolute."""
    return base.rstrip("/") + "/" + relative.lstrip("/") if relative.strip("/") else base + "/"


def script_argv(
    path: str, runas: Optional[str], sudo: bool, keep_env: Optional[Dict[str, str]] = None
) -> List[str]:
    """The command line of docs/codedeploy-agent.md#hook-command-line, as an argv list so paths with
    spaces work.

    sudo resets the environment, so the variables named in `keep_env` (the CodeDeploy ones and
    the instance's) are kept with --preserve-env: their values travel in the environment, which
    only the user and root can read, never on the command line. The reference loses them.
    """
    command = ["su", runas, "-c", shlex.quote(path)] if runas else [path]
    if sudo:
        names = sorted(keep_env or {})
        return (
            ["sudo", "--preserve-env=" + ",".join(names), *command] if names else ["sudo", *command]
        )
    return command


# (text, continued, ends): a piece of output; `continued` when it carries on the line of the
# piece before, `ends` when the line ends with it
Piece = Tuple[bytes, bool, bool]


def cut_point(data: bytes, limit: int, avoid: Sequence[bytes] = ()) -> int:
    """Where to cut `data` near `limit`: never inside a UTF-8 character, nor inside any of
    the byte strings in `avoid` (secrets, so each piece can be masked on its own)."""
    cut = min(limit, len(data))
    back = 0
    while (
        back < 3 and cut - back > 0 and cut - back < len(data) and data[cut - back] & 0xC0 == 0x80
    ):
        back += 1
    if 0 < back < cut and data[cut - back] & 0xC0 == 0xC0:
        cut -= back  # the cut was inside a multi-byte character: cut before it
    for _ in range(len(avoid) + 1):
        moved = False
        for secret in avoid:
            start = data.find(secret, max(0, cut - len(secret) + 1))
            if 0 < start < cut < start + len(secret):
                cut, moved = start, True
        if not moved:
            break
    return cut


def _crlf_hint(path: str, location: str) -> str:
    """A #! line ending in a carriage return (a script saved with Windows line endings) names
    an interpreter such as "/bin/sh\\r" that no system has: say so, and how to fix it."""
    try:
        with open(path, "rb") as script:
            first = script.readline(4096)
    except OSError:
        return ""
    if not (first.startswith(b"#!") and first.endswith(b"\r\n")):
        return ""
    return (
        "; its #! line ends in a carriage return: the script has Windows (CRLF) line endings, "
        "so the interpreter %r does not exist. Convert it in the revision with `dos2unix %s`, "
        "or save it with Unix (LF) line endings"
        % (first[2:-1].decode("utf-8", "replace").strip(" "), location)
    )


class _Tailer:
    """Reads new bytes from a capture file in bounded steps and splits them into pieces: whole
    lines, and lines longer than MAX_PIECE_BYTES in several pieces."""

    def __init__(self, path: str, stream: str, avoid: Sequence[bytes] = ()) -> None:
        self.path = path
        self.stream = stream
        self.fd = os.open(path, os.O_RDONLY)
        self.offset = 0
        self.pending = b""  # the start of a line not ended yet
        self.in_line = False  # pieces of the pending line were returned already
        self.avoid = list(avoid)
        self.lookahead = max([len(s) for s in self.avoid] + [4])
        self.head: Optional[str] = None  # what the engine gets of a long line being read
        self.more = 0  # characters of that line after the head

    def read_pieces(
        self, final: bool = False, budget: int = PUMP_BUDGET_BYTES
    ) -> Tuple[List[Piece], bool]:
        """The pieces of up to `budget` new bytes, and whether more bytes may be waiting."""
        chunks = []
        read = 0
        while read < budget:
            data = os.pread(self.fd, min(_READ_CHUNK, budget - read), self.offset)
            if not data:
                break
            self.offset += len(data)
            read += len(data)
            chunks.append(data)
        buffer = self.pending + b"".join(chunks)
        pieces: List[Piece] = []
        start = 0
        while True:
            newline = buffer.find(b"\n", start, start + MAX_PIECE_BYTES)
            if newline >= 0:
                pieces.append((buffer[start : newline + 1], self.in_line, True))
                self.in_line = False
                start = newline + 1
            elif len(buffer) - start >= MAX_PIECE_BYTES + self.lookahead:
                window = buffer[start : start + MAX_PIECE_BYTES + self.lookahead]
                cut = start + (cut_point(window, MAX_PIECE_BYTES, self.avoid) or MAX_PIECE_BYTES)
                pieces.append((buffer[start:cut], self.in_line, False))
                self.in_line = True
                start = cut
            else:
                break
        self.pending = buffer[start:]
        more = read >= budget
        if final and not more and self.pending:
            pieces.append((self.pending, self.in_line, True))  # the last line has no newline
            self.pending, self.in_line = b"", False
        return pieces, more

    def close(self) -> None:
        os.close(self.fd)


@functools.lru_cache(maxsize=1024)
def _real_revision_dir(archive_dir: str) -> str:
    """The revision folder's real path, resolved once per folder: the agent made the folder,
    and a script is checked against it at each event (the check below resolves the script's
    own part afresh each time, where a revision's symlinks could lead out)."""
    return os.path.realpath(archive_dir)


def _real_script_path(path: str, archive_dir: str, inside: str) -> str:
    """os.path.realpath(path). Where the script lies in the revision folder with no symlink
    on the way (the usual case) only that part is walked: two lstat calls for
    hooks/start.sh, not one per component of the whole path."""
    prefix = archive_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        return os.path.realpath(path)
    current = inside
    for part in path[len(prefix) :].split("/"):
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return os.path.realpath(path)
        except OSError:  # missing: realpath says where it would be
            return os.path.realpath(path)
    return current


async def run_script(
    script: Dict,
    *,
    event: str,
    index: int,
    archive_dir: str,
    logs_dir: str,
    env: Dict[str, str],
    log: ScriptsLog,
    keep_env: Optional[Dict[str, str]] = None,
    on_output: Optional[OutputCallback] = None,
    on_spawn: Optional[SpawnCallback] = None,
    kill_grace: float = DEFAULT_KILL_GRACE_SECONDS,
    tail_chars: int = 8192,
    redact: Optional[Redactor] = None,
) -> results.ScriptResult:
    """Run one appspec hook entry; never raises for script problems, only on cancellation."""
    location = script["location"]
    timeout = int(script.get("timeout") or 3600)
    runas = script.get("runas") or None
    path = os.path.abspath(ruby_join(archive_dir, location))
    started = time.time()

    def fail(code: str, message: str) -> results.ScriptResult:
        log.write("Script - %s\n" % location)
        log.write("[deploydeck] %s\n" % message)
        return results.ScriptResult(
            location, path, code, message, started=started, ended=time.time()
        )

    inside = _real_revision_dir(archive_dir)
    real = _real_script_path(path, archive_dir, inside)
    if real != inside and not real.startswith(inside.rstrip("/") + "/"):
        return fail(
            results.SCRIPT_FAILED,
            "Script at specified location: %s is outside the revision (%s); only the "
            "revision's scripts are run" % (location, real),
        )
    if not os.path.lexists(path) or not os.path.exists(path):
        return fail(
            results.SCRIPT_MISSING, "Script does not exist at specified location: %s" % path
        )
    if not os.access(path, os.X_OK):
        log.write(
            "[deploydeck] Script at %s is not executable. Trying to make it executable.\n" % path
        )
        try:
            mode = os.stat(path).st_mode
            os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as error:
            return fail(
                results.SCRIPT_NOT_EXECUTABLE,
                "Script at specified location: %s is not executable and could not be made "
                "executable (%s)" % (location, error.strerror),
            )
    if runas:
        try:
            pwd.getpwnam(runas)
        except KeyError:
            return fail(
                results.SCRIPT_FAILED,
                "Script at specified location: %s cannot run as user %s: no such user on this "
                "host" % (location, runas),
            )

    log.write("Script - %s\n" % location)
    # inherited by every descendant, so a stop finds those that left the script's groups
    marker = "%d-%s" % (os.getpid(), secrets.token_hex(8))
    env = dict(env, **{HOOK_RUN_VARIABLE: marker})
    keep_env = dict(keep_env or {}, **{HOOK_RUN_VARIABLE: marker})
    redact = redact or Redactor()
    # the capture files hold output before it is masked: owner-only, like the logs
    make_private_dir(logs_dir)
    base = os.path.join(logs_dir, "%s-%d" % (event, index))
    capture = {"stdout": base + ".stdout", "stderr": base + ".stderr"}
    write_fds = []
    for p in capture.values():
        write_fds.append(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600))
        os.fchmod(write_fds[-1], 0o600)
    tailers = [
        _Tailer(capture["stdout"], "stdout", redact.encoded),
        _Tailer(capture["stderr"], "stderr", redact.encoded),
    ]
    tail = OutputTail(tail_chars)
    keep_capture = False  # kept only while something in the script's group may still write

    def take(tailer: _Tailer, raw: bytes, continued: bool, ends: bool) -> None:
        text = redact(raw.decode("utf-8", "replace"))
        log.write_piece(text if continued else "[%s]%s" % (tailer.stream, text), continued, ends)
        tail.add(text if continued else "[%s]%s" % (tailer.stream, text))
        if on_output is None:
            return
        # The engine gets a line's first MAX_EMITTED_LINE characters, once the line has ended.
        if not continued:
            tailer.head, tailer.more = text, 0
        elif tailer.head is not None and len(tailer.head) + len(text) <= MAX_EMITTED_LINE:
            tailer.head += text
        else:
            tailer.more += len(text)
        if not ends:
            return
        line, more = tailer.head or "", tailer.more
        tailer.head, tailer.more = None, 0
        if len(line) > MAX_EMITTED_LINE:
            line, more = line[:MAX_EMITTED_LINE], more + len(line) - MAX_EMITTED_LINE
        if more:
            line += "... [%d more characters in scripts.log]\n" % more
        on_output(tailer.stream, line, time.time())

    def pump(final: bool = False) -> bool:
        got = False
        for tailer in tailers:
            while True:
                pieces, more = tailer.read_pieces(final)
                got = got or bool(pieces) or more
                for piece in pieces:
                    take(tailer, *piece)
                if not (final and more):
                    break
        return got

    def pump_quietly() -> None:
        with contextlib.suppress(Exception):  # the error being handled may be the pump's own
            pump()

    try:
        try:
            argv = script_argv(path, runas, bool(script.get("sudo")), keep_env)
            launcher = _launcher if _launcher is not None and _launcher.usable else None
            spawning = asyncio.ensure_future(
                launcher.start(argv, archive_dir, env, capture["stdout"], capture["stderr"])
                if launcher is not None
                else asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fds[0],
                    stderr=write_fds[1],
                    cwd=archive_dir,
                    env=env,
                    start_new_session=True,
                )
            )
            try:
                proc = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                # A stop while it starts: the script may already run; end its group too.
                with contextlib.suppress(Exception):
                    started_proc = await spawning
                    log.write("[deploydeck] Stopped; ending the script's process group\n")
                    await end_process_group(started_proc.pid, kill_grace, marker=marker)
                raise
        except OSError as error:
            hint = ""
            if error.errno == 8:  # ENOEXEC
                hint = "; the script needs a first line such as #!/bin/bash"
            elif error.errno == 2:  # ENOENT for a script that exists: its #! interpreter
                hint = _crlf_hint(path, location)
            message = "Script at specified location: %s failed with exception %s: %s%s" % (
                location,
                type(error).__name__,
                error,
                hint,
            )
            log.write("[deploydeck] %s\n" % message)
            return results.ScriptResult(
                location, path, results.SCRIPT_FAILED, message, started=started, ended=time.time()
            )
        finally:
            for fd in write_fds:
                os.close(fd)

        pgid = proc.pid
        note_run_started(marker, pgid)
        if on_spawn is not None:
            on_spawn(pgid)
        deadline = time.monotonic() + timeout
        waiter = asyncio.ensure_future(proc.wait())
        timed_out = False
        ended_how = ""
        interval = _POLL_MIN
        # `su -c` (runas) runs the script in a session of its own: its group is noted while
        # `su` lives, so it is found even if `su` goes first
        groups = {pgid}
        noted = 0.0
        try:
            while not waiter.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                await asyncio.wait({waiter}, timeout=min(interval, remaining))
                interval = _POLL_MIN if pump() else min(interval * 2, _POLL_MAX)
                if runas and time.monotonic() - noted >= _NOTE_GROUPS_SECONDS:
                    groups |= groups_under(groups)
                    noted = time.monotonic()
            if timed_out:
                log.write(
                    "[deploydeck] Timed out after %d seconds; ending its process group\n" % timeout
                )
                ended_how = await end_process_group(
                    pgid, kill_grace, pump, also=groups, marker=marker
                )
                await waiter
        except BaseException as stopped:
            # A stop (or any error while it runs): end the whole group before giving up.
            why = "Stopped" if isinstance(stopped, asyncio.CancelledError) else "Interrupted"
            try:
                await end_process_group(
                    pgid,
                    kill_grace,
                    pump_quietly,
                    also=groups,
                    marker=marker,
                    # logged once signalled: hooks stopped together are all signalled first
                    signalled=lambda: log.write(
                        "[deploydeck] %s; ending the script's process group\n" % why
                    ),
                )
            finally:
                waiter.cancel()
                with contextlib.suppress(Exception):
                    pump(final=True)
            raise
        exited = time.monotonic()
        pump(final=True)
        returncode = proc.returncode
        try:
            # nothing left, as its launcher (their subreaper) vouches: no /proc scan needed
            vouched = not runas and getattr(proc, "orphans", None) is False
            if timed_out or (vouched and groups_empty(groups)):
                left = []
            else:
                left = await survivors_after(groups, marker, exited)
        except asyncio.CancelledError:
            # A stop while the shared scan is awaited: end what the script left, as above.
            log.write("[deploydeck] Stopped; ending the script's process group\n")
            await end_process_group(pgid, kill_grace, pump_quietly, also=groups, marker=marker)
            raise
        ended = time.time()
        tail_text = tail.text()
        if timed_out:
            message = (
                "Script at specified location: %s did not complete within %d seconds; its "
                "process group was %s" % (location, timeout, ended_how)
            )
            log.write("[deploydeck] %s\n" % message)
            return results.ScriptResult(
                location,
                path,
                results.SCRIPT_TIMED_OUT,
                message,
                exit_code=None,
                started=started,
                ended=ended,
                log_tail=tail_text,
            )
        exit_code = returncode if returncode is not None and returncode >= 0 else None
        signum = -returncode if returncode is not None and returncode < 0 else None
        notes_files: List[str] = []
        if left:
            keep_capture = True
            notes_files = list(capture.values())
            log.write(
                "[deploydeck] Processes still running in the script's process group: %s; "
                "their output goes to %s\n" % (" ".join(map(str, left)), ", ".join(notes_files))
            )
        if returncode == 0:
            return results.ScriptResult(
                location,
                path,
                results.SUCCESS,
                "Succeeded",
                exit_code=0,
                started=started,
                ended=ended,
                log_tail=tail_text,
                left_running=left,
                output_files=notes_files,
            )
        if signum is not None:
            what = "was killed by signal %d" % signum
        elif returncode is None:  # the launcher that started it is gone, and its status with it
            what = "has ended, but its exit status was lost with the runner's hook launcher"
        else:
            what = "failed with exit code %d" % returncode
            if returncode in (126, 127):  # `env bash\r` or sudo: interpreter not found
                what += _crlf_hint(path, location)
        user = " as user %s" % runas if runas else ""
        message = "Script at specified location: %s%s %s" % (location, user, what)
        log.write("[deploydeck] %s\n" % message)
        return results.ScriptResult(
            location,
            path,
            results.SCRIPT_FAILED,
            message,
            exit_code=exit_code,
            signal=signum,
            started=started,
            ended=ended,
            log_tail=tail_text,
            left_running=left,
            output_files=notes_files,
        )
    finally:
        note_run_ended(marker)
        for tailer in tailers:
            tailer.close()
        if not keep_capture:
            for p in capture.values():
                try:
                    os.remove(p)
                except OSError:
                    pass
