"""Readying an SSH host for the agent: one probe round trip (python3 present and new enough,
the home folder, the agent cached there by content hash), the agent sent when it is missing,
and each bundle sent once per host (sha256 checked). Files travel on a command's input, so a
host needs no SFTP subsystem; the host's cache (`~/.deploydeck`: the agent, the bundles) is
owner-only.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.targets.agent_package import agent_zipapp
from engine.targets.asyncssh_quiet import asyncssh
from engine.targets.ssh_connection import (
    HOST_SETUP_FAILED,
    PYTHON_MISSING,
    SshEndpoint,
    SshProblem,
)

BUNDLE_IN_USE_SECONDS = 3600.0


# Run by the host's python (any version, so it can say when it is too old): prints marked
# lines `python ok|old`, `version`, `home`, `agent <sha256>|missing`, and the agent root and fs
# root with `~` expanded. argv: the agent's file name, agent_root, fs_root.
_MARK = "DEPLOYDECK-PROBE "
_PROBE = """
import hashlib, os, sys
def say(key, value):
    sys.stdout.write("DEPLOYDECK-PROBE %s %s\\n" % (key, value))
say("python", "ok" if sys.version_info >= (3, 8) else "old")
say("version", "%d.%d.%d" % sys.version_info[:3])
if sys.version_info < (3, 8):
    sys.exit(0)  # a host that cannot run the agent gets nothing written
home = os.path.expanduser("~")
say("home", home)
cache = os.path.join(home, ".deploydeck")
for folder in (cache, os.path.join(cache, "agent"), os.path.join(cache, "bundles")):
    try:
        if not os.path.isdir(folder):
            os.mkdir(folder, 0o700)
        os.chmod(folder, 0o700)
    except (IOError, OSError):
        pass
try:
    agent = os.path.join(cache, "agent", sys.argv[1])
    with open(agent, "rb") as f:
        say("agent", hashlib.sha256(f.read()).hexdigest())
    os.chmod(agent, 0o600)
except (IOError, OSError):
    say("agent", "missing")
for key, value in (("agent_root", sys.argv[2]), ("fs_root", sys.argv[3])):
    if value:
        say(key, os.path.join(home, os.path.expanduser(value)))
root = os.path.join(home, os.path.expanduser(sys.argv[2] or "~/.deploydeck/deployment-root"))
if not os.path.isdir(root):
    try:
        os.makedirs(root)
        os.chmod(root, 0o711)
    except (IOError, OSError):
        pass
"""
# A new agent root is 0711: other users cannot list it (its logs are the agent's, 0600), while
# a `runas` hook's user can still reach its own script in the deployment archive below it.

# Reads a file from its input into argv[1] (0600, under a temporary name renamed into place,
# so instances sharing a host may send the same file at once), if its sha256 is argv[2].
_RECEIVED = "DEPLOYDECK-RECEIVED "
_RECEIVE = """
import hashlib, os, sys
path, expected = sys.argv[1], sys.argv[2]
partial = "%s.partial-%d" % (path, os.getpid())
def say(words):
    sys.stdout.write("DEPLOYDECK-RECEIVED %s\\n" % words)
try:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    digest = hashlib.sha256()
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        for block in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
            digest.update(block)
            f.write(block)
    if digest.hexdigest() != expected:
        os.unlink(partial)
        say("damaged " + digest.hexdigest())
        sys.exit(3)
    os.rename(partial, path)
    say("ok")
except (IOError, OSError) as error:
    if os.path.exists(partial):
        os.unlink(partial)
    say("error " + (error.strerror or str(error)))
    sys.exit(2)
"""

# argv: a bundle's path, size, sha256, how many bundles to keep, seconds a bundle counts as in
# use. Says whether a sound copy is there (then marks it used), and prunes the cache: the most
# recently used bundles are kept, and any used recently, which another deployment may unpack.
_CACHED = "DEPLOYDECK-CACHED "
_BUNDLE_CACHE = """
import hashlib, os, sys, time
path, size, sha = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keep, in_use = int(sys.argv[4]), float(sys.argv[5])
present = False
try:
    if os.path.getsize(path) == size:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        present = digest.hexdigest() == sha
    if present:
        os.utime(path, None)
        os.chmod(path, 0o600)
except (IOError, OSError):
    pass
folder = os.path.dirname(path)
try:
    entries = []
    for name in os.listdir(folder):
        other = os.path.join(folder, name)
        if other != path:
            entries.append((os.stat(other).st_mtime, other))
    entries.sort(reverse=True)
    for mtime, other in entries[max(keep - 1, 0):]:
        if mtime < time.time() - in_use:
            os.remove(other)
except (IOError, OSError):
    pass
sys.stdout.write("DEPLOYDECK-CACHED %s\\n" % ("present" if present else "absent"))
"""
SEND_BLOCK = 1 << 20


class SshHost:
    """One host as the probe found it (where the agent, the deployment root and the cache are)
    and the bundles sent to it; `prepare` runs again on every new connection."""

    def __init__(self, endpoint: SshEndpoint, python: str) -> None:
        self.endpoint = endpoint
        self.python = python
        self.agent_path: str | None = None
        self.root: str | None = None
        self.fs_root: str | None = None
        self._cache = ""
        self._uploaded: dict[str, str] = {}

    async def prepare(
        self,
        connection: asyncssh.SSHClientConnection,
        agent_root: str | None,
        fs_root: str | None,
    ) -> None:
        """One round trip: python3 present and new enough, the user's home, the folders with
        `~` expanded, and the sha256 of the agent cached there; the agent is sent when it is
        missing or damaged. Output is read by its markers, so a login banner does no harm."""
        python = shlex.quote(self.python)
        data, sha = agent_zipapp()
        name = f"deploydeck-agent-{sha[:16]}.pyz"
        args = " ".join(shlex.quote(a) for a in (name, agent_root or "", fs_root or ""))
        probe = await connection.run(
            f"if command -v {python} >/dev/null 2>&1; then "
            f"{python} -c {shlex.quote(_PROBE)} {args}; else echo {_MARK}python missing; fi",
            check=False,
        )
        found = dict(
            line[len(_MARK) :].partition(" ")[::2]
            for line in str(probe.stdout or "").splitlines()
            if line.startswith(_MARK)
        )
        state = found.get("python")
        if state != "ok":
            error = " ".join(str(probe.stderr or "").strip().splitlines()[-2:])
            why = {
                "old": f"is too old ({found.get('version')}; 3.8 or newer is needed)",
                "missing": "is not installed",
            }.get(state or "", f"could not run ({error or 'no output'})")
            raise SshProblem(
                PYTHON_MISSING,
                f"{self.python} {why} on {self.endpoint.label}: the deploydeck agent needs it. "
                "Install python3 there (or set `python:` for the instance).",
            )
        home = found["home"]
        base = self._cache = f"{home}/.deploydeck"
        self.root = found.get("agent_root") or f"{base}/deployment-root"
        self.fs_root = found.get("fs_root") or None
        path = f"{base}/agent/{name}"
        if found.get("agent") != sha:
            await self._send(connection, data, path, sha)
        self.agent_path = path

    async def _send(
        self, connection: asyncssh.SSHClientConnection, source: bytes | Path, path: str, sha: str
    ) -> None:
        """Write `source` (bytes, or a local file) to `path` on the host, through a command's
        input: its sha256 is checked there before it is renamed into place."""
        python = shlex.quote(self.python)
        process = await connection.create_process(
            f"{python} -c {shlex.quote(_RECEIVE)} {shlex.quote(path)} {sha}", encoding=None
        )
        try:
            if isinstance(source, bytes):
                process.stdin.write(source)
                await process.stdin.drain()
            else:
                with source.open("rb") as local:
                    while block := local.read(SEND_BLOCK):
                        process.stdin.write(block)
                        await process.stdin.drain()
            process.stdin.write_eof()
        except (asyncssh.Error, OSError, BrokenPipeError):
            pass  # the host's answer below says why it stopped reading
        done = await process.wait()
        said = _marked(done.stdout, _RECEIVED)
        if said == "ok":
            return
        what, _, detail = said.partition(" ")
        if what == "damaged":
            reason = f"it arrived damaged (sha256 {detail}, not {sha})"
        elif what == "error":
            reason = detail
        else:
            raw = done.stderr or b""  # bytes: the process was opened with encoding=None
            if isinstance(raw, str):  # pragma: no cover
                raise TypeError("the host's answer arrived as text, not bytes")
            stderr = raw.decode(errors="replace").strip().splitlines()
            reason = " ".join(stderr[-2:]) or f"exit status {done.exit_status}"
        raise SshProblem(
            HOST_SETUP_FAILED,
            f"Preparing {self.endpoint.label} failed: cannot write {path}: {reason}",
        )

    async def upload_bundle(
        self,
        connection: asyncssh.SSHClientConnection,
        command: dict[str, Any],
        bundle_file: Callable[[dict[str, Any]], tuple[Path, str, str]],
        max_revisions: int,
    ) -> dict[str, Any]:
        """Send the bundle once per host; the command then names its copy there, whose sha256
        the agent checks before it unpacks it. A sound copy from an earlier deployment is used
        again (a damaged one is sent again), and the host's bundle cache is pruned."""
        local, kind, sha = bundle_file(command)
        remote = self._uploaded.get(sha) or f"{self._cache}/bundles/{sha}.{kind}"
        if sha not in self._uploaded:
            args = (remote, local.stat().st_size, sha, max_revisions, BUNDLE_IN_USE_SECONDS)
            cached = await connection.run(
                f"{shlex.quote(self.python)} -c {shlex.quote(_BUNDLE_CACHE)} "
                + " ".join(shlex.quote(str(a)) for a in args),
                check=False,
                encoding=None,
            )
            if _marked(cached.stdout, _CACHED) != "present":
                await self._send(connection, local, remote, sha)
            self._uploaded[sha] = remote
        return {"path": remote, "type": kind, "sha256": sha}


def _marked(output: Any, mark: str) -> str:
    """What follows `mark` on the last line of a command's output that starts with it."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output or "")
    found = [line[len(mark) :].strip() for line in text.splitlines() if line.startswith(mark)]
    return found[-1] if found else ""
