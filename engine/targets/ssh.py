"""An instance reached over SSH (asyncssh): one connection per host for the whole deployment.

On first use the target connects (verifying the host key against known_hosts: an unknown or
changed key is a refusal that shows the fingerprint, never a silent accept), checks python3,
ships the agent (cached on the host by content hash) and, for DownloadBundle, uploads the
bundle once (sha256 checked). Files travel on a command's input, so a host needs no SFTP
subsystem; the host's cache (`~/.deploydeck`: the agent, the bundles) is owner-only. Each
lifecycle command runs `python3 <agent> run` on the connection and streams its JSON lines
back. A stop closes the command's input, which makes the agent end the running script's
process group; a connection that dies (keepalives notice in seconds) fails the instance with
its own error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.host import results
from engine.host.results import CommandResult
from engine.targets.agent_package import agent_zipapp
from engine.targets.asyncssh_quiet import asyncssh
from engine.targets.base import Emit

# deploydeck's own error codes for what CodeDeploy's agent never sees.
HOST_KEY_UNKNOWN = "HostKeyUnknown"
HOST_KEY_CHANGED = "HostKeyChanged"
UNREACHABLE = "HostUnreachable"
AUTH_FAILED = "AuthenticationFailed"
CONNECTION_LOST = "ConnectionLost"
PYTHON_MISSING = "PythonMissing"
HOST_SETUP_FAILED = "HostSetupFailed"

CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 3.0
KEEPALIVE_COUNT_MAX = 3
STOP_WAIT_EXTRA = 10.0
BUNDLE_IN_USE_SECONDS = 3600.0
# The agent ends what it runs after AGENT_IDLE_EXIT seconds without input, so a network that
# fails without closing the connection still ends the hooks; the engine sends an empty line
# every HEARTBEAT_SECONDS while the session is open.
HEARTBEAT_SECONDS = 3.0
AGENT_IDLE_EXIT = 15.0


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


class SshProblem(Exception):
    """A connection-level failure, with the error code the instance fails with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SshEndpoint:
    """Where and how to connect. Host keys are checked against `known_hosts` (none: every key
    is unknown)."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: Path | None = None
    proxy_jump: str | None = None
    known_hosts: tuple[Path, ...] = ()
    instance: str = ""  # the workspace instance it serves, for the advice in messages
    role: str = ""  # "jump host" for the host an instance is reached through

    @property
    def described(self) -> str:
        """For messages: `root@10.0.0.5:22 (the jump host of web-3)`."""
        if self.role:
            return f"{self.label} (the {self.role} of {self.instance or 'the instance'})"
        return f"{self.label} ({self.instance})" if self.instance else self.label

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name a known_hosts line uses for this host."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def jump_endpoint(endpoint: SshEndpoint) -> SshEndpoint:
    """The jump host of `endpoint` (`[user@]host[:port]`, host possibly a bracketed IPv6
    address), with the same key and known_hosts."""
    assert endpoint.proxy_jump
    user, _, hostport = endpoint.proxy_jump.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    return SshEndpoint(
        host,
        int(port or 22),
        user or endpoint.user,
        endpoint.key_file,
        None,
        endpoint.known_hosts,
        endpoint.instance,
        "jump host",
    )


def _recorded_keys(endpoint: SshEndpoint) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
    """The keys known_hosts trusts and revokes for the host."""
    files = [str(p) for p in endpoint.known_hosts if p.exists()]
    if not files:
        return [], []
    trusted, _, revoked, _, _, _, _ = asyncssh.read_known_hosts(files).match(
        endpoint.host, "", endpoint.port
    )
    return list(trusted), list(revoked)


async def fetch_host_key(endpoint: SshEndpoint) -> asyncssh.SSHKey | None:
    """The host's public key, read without authenticating (for refusals and `trust`). Of a
    host with several keys, one of a type already recorded for it is asked for first."""
    recorded = {
        alg
        for key in _recorded_keys(endpoint)[0]
        for alg in _HOST_KEY_ALGS.get(key.get_algorithm(), (key.get_algorithm(),))
    }
    tunnel = None
    try:
        if endpoint.proxy_jump:
            tunnel = await _connect_jump(endpoint)
        for algs in ([sorted(recorded)] if recorded else []) + [()]:
            with contextlib.suppress(asyncssh.KeyExchangeFailed):
                return await asyncio.wait_for(
                    asyncssh.get_server_host_key(
                        endpoint.host,
                        endpoint.port,
                        tunnel=tunnel or (),
                        server_host_key_algs=algs,
                    ),
                    CONNECT_TIMEOUT,
                )
        return None
    finally:
        if tunnel is not None:
            tunnel.close()


# RSA keys are recorded as ssh-rsa and offered under these signature algorithms.
_HOST_KEY_ALGS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def recorded_fingerprints(endpoint: SshEndpoint) -> list[str]:
    """`ssh-ed25519 SHA256:...` of each key known_hosts trusts for the host."""
    return [
        f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        for key in _recorded_keys(endpoint)[0]
    ]


def key_status(endpoint: SshEndpoint, key: asyncssh.SSHKey) -> str:
    """ "trusted", "changed" (another key is recorded for the host) or "unknown"."""
    trusted, revoked = _recorded_keys(endpoint)
    if any(k.public_data == key.public_data for k in trusted) and not any(
        k.public_data == key.public_data for k in revoked
    ):
        return "trusted"
    return "changed" if trusted else "unknown"


async def _connect_jump(endpoint: SshEndpoint) -> asyncssh.SSHClientConnection:
    return await _open(jump_endpoint(endpoint))


def _trusted(endpoint: SshEndpoint) -> asyncssh.SSHKnownHosts:
    """The recorded host keys; none recorded means every key is unknown (never "no check")."""
    files = [str(p) for p in endpoint.known_hosts if p.exists()]
    return asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")


async def _open(endpoint: SshEndpoint, tunnel: Any = ()) -> asyncssh.SSHClientConnection:
    options: dict[str, Any] = {
        "port": endpoint.port,
        "known_hosts": _trusted(endpoint),
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "tunnel": tunnel,
    }
    if endpoint.user:
        options["username"] = endpoint.user
    what = endpoint.described
    trust = f"deploydeck trust {endpoint.instance or '<instance>'}"
    if endpoint.key_file:
        try:
            options["client_keys"] = [asyncssh.read_private_key(str(endpoint.key_file))]
        except OSError as error:
            raise SshProblem(
                AUTH_FAILED,
                f"The key_file {endpoint.key_file} for {what} cannot be read "
                f"({error.strerror}): fix key_file, or leave it out to use the ssh-agent.",
            ) from None
        except asyncssh.KeyImportError as error:
            raise SshProblem(
                AUTH_FAILED,
                f"The key_file {endpoint.key_file} for {what} cannot be used: {error}. "
                "deploydeck does not ask for passphrases: load the key into the ssh-agent "
                f"(ssh-add {endpoint.key_file}) and leave key_file out, or use a key without one.",
            ) from None
    try:
        return await asyncssh.connect(endpoint.host, **options)
    except asyncssh.HostKeyNotVerifiable:
        key = None
        with contextlib.suppress(Exception):
            key = await fetch_host_key(endpoint)
        if key is None:
            raise SshProblem(
                HOST_KEY_UNKNOWN, f"The host key of {what} cannot be verified"
            ) from None
        fingerprint = key.get_fingerprint("sha256")
        status = key_status(endpoint, key)
        if status == "changed":
            raise SshProblem(
                HOST_KEY_CHANGED,
                f"The host key of {what} CHANGED: it now presents {key.get_algorithm()} "
                f"{fingerprint}, which is not the key recorded in "
                f"{', '.join(map(str, endpoint.known_hosts))} "
                f"({'; '.join(recorded_fingerprints(endpoint))}). This may "
                "be an attack or a reinstalled host; check it out of band, then run "
                f"`{trust} --replace-changed`.",
            ) from None
        raise SshProblem(
            HOST_KEY_UNKNOWN,
            f"The host key of {what} is unknown: {key.get_algorithm()} {fingerprint}. "
            f"Check the fingerprint, then record it with `{trust}`.",
        ) from None
    except asyncssh.PermissionDenied as error:
        raise SshProblem(
            AUTH_FAILED,
            f"{what} refused the login{' as ' + endpoint.user if endpoint.user else ''}: "
            f"{error.reason}. Check the user and key_file (or the ssh-agent) of the instance.",
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise SshProblem(UNREACHABLE, f"{what} is unreachable: {reason}") from None


class SshTarget:
    """One SSH instance. The connection opens on first use and stays until `close()`."""

    def __init__(
        self,
        name: str,
        endpoint: SshEndpoint,
        environment: dict[str, str],
        *,
        agent_root: str | None = None,
        python: str = "python3",
        fs_root: str | None = None,
        max_revisions: int = 5,
        kill_grace_seconds: float = 10.0,
        max_bundle_bytes: int | None = None,
        secret_names: tuple[str, ...] = (),
        limiter: asyncio.Semaphore | None = None,
        bundle_file: Callable[[dict[str, Any]], tuple[Path, str, str]] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.environment = environment
        self.secret_names = secret_names  # the variables whose values the agent masks in logs
        self.agent_root = agent_root
        self.python = python
        self.fs_root = fs_root
        self.max_revisions = max_revisions
        self.kill_grace_seconds = kill_grace_seconds
        self.max_bundle_bytes = max_bundle_bytes
        self.limiter = limiter or asyncio.Semaphore(1)
        self.bundle_file = bundle_file
        self._connection: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._agent_path: str | None = None
        self._root: str | None = None
        self._fs_root: str | None = None
        self._cache = ""
        self._uploaded: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._agent: asyncssh.SSHClientProcess | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._emit: Emit | None = None  # the last command's, for the `closed` state

    @property
    def host(self) -> str:
        return f"ssh:{self.endpoint.label}"

    async def close(self) -> None:
        """End the agent session (its end of input), then the connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._agent is not None:
            with contextlib.suppress(Exception):
                self._agent.stdin.write_eof()
                await asyncio.wait_for(self._agent.wait_closed(), 5)
            self._agent = None
        for connection in (self._connection, self._jump):
            if connection is not None:
                connection.close()
                with contextlib.suppress(Exception):
                    await connection.wait_closed()
        self._connection = self._jump = None

    # ---- setup --------------------------------------------------------------------------

    async def _connected(self, emit: Emit) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return self._connection
            emit({"type": "connection", "state": "connecting", "host": self.endpoint.label})
            if self.endpoint.proxy_jump:
                self._jump = await _connect_jump(self.endpoint)
            self._connection = await _open(self.endpoint, self._jump or ())
            await self._prepare_host(self._connection)
            emit({"type": "connection", "state": "connected", "host": self.endpoint.label})
            return self._connection

    async def _prepare_host(self, connection: asyncssh.SSHClientConnection) -> None:
        """One round trip: python3 present and new enough, the user's home, the folders with
        `~` expanded, and the sha256 of the agent cached there; the agent is sent when it is
        missing or damaged. Output is read by its markers, so a login banner does no harm."""
        python = shlex.quote(self.python)
        data, sha = agent_zipapp()
        name = f"deploydeck-agent-{sha[:16]}.pyz"
        args = " ".join(shlex.quote(a) for a in (name, self.agent_root or "", self.fs_root or ""))
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
        self._root = found.get("agent_root") or f"{base}/deployment-root"
        self._fs_root = found.get("fs_root") or None
        path = f"{base}/agent/{name}"
        if found.get("agent") != sha:
            await self._send(connection, data, path, sha)
        self._agent_path = path

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

    async def _upload_bundle(
        self, connection: asyncssh.SSHClientConnection, command: dict[str, Any]
    ) -> dict[str, Any]:
        """Send the bundle once per host; the command then names its copy there, whose sha256
        the agent checks before it unpacks it. A sound copy from an earlier deployment is used
        again (a damaged one is sent again), and the host's bundle cache is pruned."""
        assert self.bundle_file is not None
        local, kind, sha = self.bundle_file(command)
        remote = self._uploaded.get(sha) or f"{self._cache}/bundles/{sha}.{kind}"
        if sha not in self._uploaded:
            args = (remote, local.stat().st_size, sha, self.max_revisions, BUNDLE_IN_USE_SECONDS)
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

    # ---- commands -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """One of the deployment's `ssh_max_parallel` host slots for this instance's whole
        lifecycle; afterwards the agent and the connection are let go."""
        async with self.limiter:
            try:
                yield
            finally:
                was_open = self._connection is not None
                await self.close()
                if was_open and self._emit is not None:
                    self._emit(
                        {"type": "connection", "state": "closed", "host": self.endpoint.label}
                    )

    async def run(self, command: dict[str, Any], emit: Emit) -> CommandResult:
        name = command["command"]
        self._emit = emit
        try:
            connection = await self._connected(emit)
            full = {
                **command,
                "root_dir": self._root,
                "fs_root": self._fs_root,
                "environment": self.environment,
                "secret_environment": list(self.secret_names),
                "max_revisions": self.max_revisions,
                "kill_grace_seconds": self.kill_grace_seconds,
                "max_bundle_bytes": self.max_bundle_bytes,
            }
            if name == "DownloadBundle" and self.bundle_file is not None:
                full["bundle"] = await self._upload_bundle(connection, command)
            return await self._run_agent(connection, full, emit)
        except SshProblem as problem:
            emit(
                {
                    "type": "connection",
                    "state": "failed",
                    "host": self.endpoint.label,
                    "detail": str(problem),
                }
            )
            return _failed(name, problem.code, str(problem))
        except (asyncssh.Error, OSError) as error:
            emit(
                {
                    "type": "connection",
                    "state": "lost",
                    "host": self.endpoint.label,
                    "detail": str(error),
                }
            )
            await self.close()
            return _failed(
                name,
                CONNECTION_LOST,
                f"The connection to {self.endpoint.label} was lost during {name}: "
                f"{error or type(error).__name__}. What ran on the host was ended when its "
                "session closed.",
            )

    async def _agent_session(
        self, connection: asyncssh.SSHClientConnection
    ) -> asyncssh.SSHClientProcess:
        """The host's agent process, started once and fed one command at a time."""
        if self._agent is None or self._agent.is_closing():
            assert self._agent_path is not None
            self._agent = await connection.create_process(
                f"{shlex.quote(self.python)} {shlex.quote(self._agent_path)} serve "
                f"--idle-exit {AGENT_IDLE_EXIT:g}",
                encoding="utf-8",
            )
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            self._heartbeat = asyncio.create_task(self._beat(self._agent))
        return self._agent

    async def _beat(self, process: asyncssh.SSHClientProcess) -> None:
        """Empty lines to the agent while its session lasts: the agent's proof of a live engine."""
        with contextlib.suppress(Exception):
            while self._agent is process and not process.stdin.is_closing():
                process.stdin.write("\n")
                await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _run_agent(
        self, connection: asyncssh.SSHClientConnection, command: dict[str, Any], emit: Emit
    ) -> CommandResult:
        process = await self._agent_session(connection)
        process.stdin.write(json.dumps(command) + "\n")
        try:
            while True:
                line = await process.stdout.readline()
                # readline hands back part of a line when the channel's window fills up
                while line and not line.endswith("\n"):
                    more = await process.stdout.readline()
                    if not more:
                        break
                    line += more
                if not line:
                    break
                message = _agent_message(line)
                if message is None:
                    continue  # not the agent's: a login banner from the user's shell files
                if message.get("type") == "result":
                    return CommandResult.from_dict(message["result"])
                emit(message)
        except asyncio.CancelledError:
            # A stop: end of input makes the agent end the script's process group and exit.
            self._agent = None
            with contextlib.suppress(Exception):
                process.stdin.write_eof()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), self.kill_grace_seconds + STOP_WAIT_EXTRA)
            process.close()
            raise
        # The agent's output ended without a result: the session or the agent died.
        self._agent = None
        if connection.is_closed():
            raise asyncssh.ConnectionLost("the connection closed")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), 5)
        stderr = ""
        with contextlib.suppress(Exception):
            stderr = " ".join((await process.stderr.read()).strip().splitlines()[-3:])
        return _failed(
            command["command"],
            results.UNKNOWN_ERROR,
            f"The agent on {self.endpoint.label} ended without a result (exit status "
            f"{process.exit_status}): {stderr}",
        )


def _agent_message(line: str) -> dict[str, Any] | None:
    """The agent's JSON object on this line, or None for anything else."""
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _failed(command: str, code: str, message: str) -> CommandResult:
    return CommandResult(command, results.FAILED, error_code=code, message=message)


def _marked(output: Any, mark: str) -> str:
    """What follows `mark` on the last line of a command's output that starts with it."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output or "")
    found = [line[len(mark) :].strip() for line in text.splitlines() if line.startswith(mark)]
    return found[-1] if found else ""
