"""An instance reached over SSH (asyncssh): one connection per host for the whole deployment.

On first use the target connects (verifying the host key against known_hosts: an unknown or
changed key is a refusal that shows the fingerprint, never a silent accept), checks python3,
ships the agent (cached on the host by content hash) and, for DownloadBundle, uploads the
bundle once (sha256 checked). Each lifecycle command runs `python3 <agent> run` on the
connection and streams its JSON lines back. A stop closes the command's input, which makes the
agent end the running script's process group; a connection that dies (keepalives notice in
seconds) fails the instance with its own error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from engine.host import results
from engine.host.results import CommandResult
from engine.targets.agent_package import agent_zipapp
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

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name a known_hosts line uses for this host."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _split_jump(jump: str, default_user: str | None) -> tuple[str, int, str | None]:
    user, _, hostport = jump.rpartition("@")
    host, _, port = hostport.partition(":")
    return host, int(port or 22), user or default_user


async def fetch_host_key(endpoint: SshEndpoint) -> asyncssh.SSHKey | None:
    """The host's public key, read without authenticating (for refusals and `trust`)."""
    tunnel = None
    try:
        if endpoint.proxy_jump:
            tunnel = await _connect_jump(endpoint)
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(endpoint.host, endpoint.port, tunnel=tunnel or ()),
            CONNECT_TIMEOUT,
        )
    finally:
        if tunnel is not None:
            tunnel.close()


def key_status(endpoint: SshEndpoint, key: asyncssh.SSHKey) -> str:
    """ "trusted", "changed" (another key is recorded for the host) or "unknown"."""
    files = [str(p) for p in endpoint.known_hosts if p.exists()]
    if not files:
        return "unknown"
    known = asyncssh.read_known_hosts(files)
    trusted, _, revoked, _, _, _, _ = known.match(endpoint.host, "", endpoint.port)
    if any(k.public_data == key.public_data for k in trusted) and not any(
        k.public_data == key.public_data for k in revoked
    ):
        return "trusted"
    return "changed" if trusted else "unknown"


async def _connect_jump(endpoint: SshEndpoint) -> asyncssh.SSHClientConnection:
    assert endpoint.proxy_jump
    host, port, user = _split_jump(endpoint.proxy_jump, endpoint.user)
    return await _open(SshEndpoint(host, port, user, endpoint.key_file, None, endpoint.known_hosts))


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
    if endpoint.key_file:
        options["client_keys"] = [str(endpoint.key_file)]
    try:
        return await asyncssh.connect(endpoint.host, **options)
    except asyncssh.HostKeyNotVerifiable:
        key = None
        with contextlib.suppress(Exception):
            key = await fetch_host_key(endpoint)
        if key is None:
            raise SshProblem(
                HOST_KEY_UNKNOWN, f"The host key of {endpoint.label} cannot be verified"
            ) from None
        fingerprint = key.get_fingerprint("sha256")
        status = key_status(endpoint, key)
        if status == "changed":
            raise SshProblem(
                HOST_KEY_CHANGED,
                f"The host key of {endpoint.label} CHANGED: it now presents {key.get_algorithm()} "
                f"{fingerprint}, which is not the key recorded in "
                f"{', '.join(map(str, endpoint.known_hosts))}. This may "
                "be an attack or a reinstalled host; check it out of band, then run "
                "`deploydeck trust` for this instance.",
            ) from None
        raise SshProblem(
            HOST_KEY_UNKNOWN,
            f"The host key of {endpoint.label} is unknown: {key.get_algorithm()} {fingerprint}. "
            "Check the fingerprint, then record it with `deploydeck trust <instance>`.",
        ) from None
    except asyncssh.PermissionDenied as error:
        raise SshProblem(
            AUTH_FAILED,
            f"{endpoint.label} refused the login{' as ' + endpoint.user if endpoint.user else ''}: "
            f"{error.reason}. Check the user and key_file (or the ssh-agent) of the instance.",
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise SshProblem(UNREACHABLE, f"{endpoint.label} is unreachable: {reason}") from None


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
        limiter: asyncio.Semaphore | None = None,
        bundle_file: Callable[[dict[str, Any]], tuple[Path, str, str]] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.environment = environment
        self.agent_root = agent_root
        self.python = python
        self.fs_root = fs_root
        self.max_revisions = max_revisions
        self.kill_grace_seconds = kill_grace_seconds
        self.limiter = limiter or asyncio.Semaphore(1)
        self.bundle_file = bundle_file
        self._connection: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._agent_path: str | None = None
        self._root: str | None = None
        self._cache = ""
        self._uploaded: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def host(self) -> str:
        return f"ssh:{self.endpoint.label}"

    async def close(self) -> None:
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
        """python3 present, the agent cached by hash, the deployment root known."""
        python = shlex.quote(self.python)
        probe = await connection.run(
            f'command -v {python} >/dev/null 2>&1 && {python} -c "import sys; '
            f'print(sys.version_info >= (3, 8))"; echo "$HOME"',
            check=False,
        )
        lines = (probe.stdout or "").split()
        if not lines or lines[0] != "True":
            found = (
                "is too old (3.8 or newer is needed)"
                if lines and lines[0] == "False"
                else "is not installed"
            )
            raise SshProblem(
                PYTHON_MISSING,
                f"{self.python} {found} on {self.endpoint.label}: the deploydeck agent needs it. "
                "Install python3 there (or set `python:` for the instance).",
            )
        home = lines[-1]
        base = self._cache = f"{home}/.deploydeck"
        self._root = self.agent_root or f"{base}/deployment-root"
        data, sha = agent_zipapp()
        path = f"{base}/agent/deploydeck-agent-{sha[:16]}.pyz"
        check = await connection.run(f"test -f {shlex.quote(path)}", check=False)
        if check.exit_status != 0:
            await self._upload_bytes(connection, data, path)
        self._agent_path = path

    async def _setup(self, connection: asyncssh.SSHClientConnection, command: str) -> None:
        """A preparation command on the host; its failure is the host's problem, not the link's."""
        done = await connection.run(command, check=False)
        if done.exit_status != 0:
            detail = str(done.stderr or done.stdout or "").strip().splitlines()[-1:] or [""]
            raise SshProblem(
                HOST_SETUP_FAILED,
                f"Preparing {self.endpoint.label} failed: `{command}` exited with "
                f"{done.exit_status}: {detail[0]}",
            )

    async def _upload_bytes(
        self, connection: asyncssh.SSHClientConnection, data: bytes, path: str
    ) -> None:
        await self._setup(connection, f"mkdir -p {shlex.quote(str(Path(path).parent))}")
        partial = f"{path}.partial-{uuid.uuid4().hex}"  # instances sharing a host upload at once
        async with connection.start_sftp_client() as sftp, sftp.open(partial, "wb") as remote:
            await remote.write(data)
        await self._setup(connection, f"mv -f {shlex.quote(partial)} {shlex.quote(path)}")

    async def _upload_bundle(
        self, connection: asyncssh.SSHClientConnection, command: dict[str, Any]
    ) -> dict[str, Any]:
        """Send the bundle once (sha256 checked there); the command then names its remote copy."""
        assert self.bundle_file is not None
        local, kind, sha = self.bundle_file(command)
        if sha in self._uploaded:
            return {"path": self._uploaded[sha], "type": kind, "sha256": sha}
        remote = f"{self._cache}/bundles/{sha}.{kind}"
        verify = (
            f'{shlex.quote(self.python)} -c "import hashlib,sys; '
            "print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())\" "
            f"{shlex.quote(remote)}"
        )
        present = await connection.run(verify, check=False)
        if (present.stdout or "").strip() != sha:
            await self._setup(connection, f"mkdir -p {shlex.quote(str(Path(remote).parent))}")
            partial = f"{remote}.partial-{uuid.uuid4().hex}"
            await asyncssh.scp(str(local), (connection, partial))
            await self._setup(connection, f"mv -f {shlex.quote(partial)} {shlex.quote(remote)}")
            present = await connection.run(verify, check=False)
            if (present.stdout or "").strip() != sha:
                raise SshProblem(
                    CONNECTION_LOST, f"The bundle arrived damaged on {self.endpoint.label}"
                )
        self._uploaded[sha] = remote
        return {"path": remote, "type": kind, "sha256": sha}

    # ---- commands -----------------------------------------------------------------------

    async def run(self, command: dict[str, Any], emit: Emit) -> CommandResult:
        name = command["command"]
        async with self.limiter:
            try:
                connection = await self._connected(emit)
                full = {
                    **command,
                    "root_dir": self._root,
                    "fs_root": self.fs_root,
                    "environment": self.environment,
                    "max_revisions": self.max_revisions,
                    "kill_grace_seconds": self.kill_grace_seconds,
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

    async def _run_agent(
        self, connection: asyncssh.SSHClientConnection, command: dict[str, Any], emit: Emit
    ) -> CommandResult:
        assert self._agent_path is not None
        process = await connection.create_process(
            f"{shlex.quote(self.python)} {shlex.quote(self._agent_path)} run", encoding="utf-8"
        )
        process.stdin.write(json.dumps(command) + "\n")
        result: CommandResult | None = None
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
                message = json.loads(line)
                if message.get("type") == "result":
                    result = CommandResult.from_dict(message["result"])
                else:
                    emit(message)
        except asyncio.CancelledError:
            # A stop: end of input makes the agent end the script's process group and answer.
            with contextlib.suppress(Exception):
                process.stdin.write_eof()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), self.kill_grace_seconds + STOP_WAIT_EXTRA)
            process.close()
            raise
        process.stdin.write_eof()
        await process.wait()
        if result is None:
            if connection.is_closed():
                raise asyncssh.ConnectionLost("the connection closed")
            stderr = (await process.stderr.read()).strip().splitlines()[-3:]
            return _failed(
                command["command"],
                results.UNKNOWN_ERROR,
                f"The agent on {self.endpoint.label} ended without a result (exit status "
                f"{process.exit_status}): {' '.join(stderr)}",
            )
        return result


def _failed(command: str, code: str, message: str) -> CommandResult:
    return CommandResult(command, results.FAILED, error_code=code, message=message)
