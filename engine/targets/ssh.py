"""An instance reached over SSH (asyncssh): one connection per host for the whole deployment.

On first use the target connects (ssh_connection: host keys checked against known_hosts) and
readies the host (ssh_host: python3, the agent, for DownloadBundle the bundle). Each
lifecycle command goes to `python3 <agent> serve` on the connection and its JSON lines stream
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
from pathlib import Path
from typing import Any

from engine.host import results
from engine.host.results import CommandResult
from engine.targets.asyncssh_quiet import asyncssh
from engine.targets.base import AgentSettings, Emit
from engine.targets.ssh_connection import (
    CONNECTION_LOST,
    SshEndpoint,
    SshProblem,
    connect,
    connect_jump,
)
from engine.targets.ssh_host import SshHost

STOP_WAIT_EXTRA = 10.0
# The agent ends what it runs after AGENT_IDLE_EXIT seconds without input, so a network that
# fails without closing the connection still ends the hooks; the engine sends an empty line
# every HEARTBEAT_SECONDS while the session is open.
HEARTBEAT_SECONDS = 3.0
AGENT_IDLE_EXIT = 15.0


class SshTarget:
    """One SSH instance. The connection opens on first use and stays until `close()`."""

    def __init__(
        self,
        name: str,
        endpoint: SshEndpoint,
        agent: AgentSettings,
        *,
        agent_root: str | None = None,
        python: str = "python3",
        fs_root: str | None = None,
        limiter: asyncio.Semaphore | None = None,
        bundle_file: Callable[[dict[str, Any]], tuple[Path, str, str]] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.agent = agent
        self.agent_root = agent_root
        self.python = python
        self.fs_root = fs_root
        self.limiter = limiter or asyncio.Semaphore(1)
        self.bundle_file = bundle_file
        self._connection: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._host = SshHost(endpoint, python)
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

    async def _connected(self, emit: Emit) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return self._connection
            emit({"type": "connection", "state": "connecting", "host": self.endpoint.label})
            if self.endpoint.proxy_jump:
                self._jump = await connect_jump(self.endpoint)
            self._connection = await connect(self.endpoint, self._jump or ())
            await self._host.prepare(self._connection, self.agent_root, self.fs_root)
            emit({"type": "connection", "state": "connected", "host": self.endpoint.label})
            return self._connection

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
            full = self.agent.command(command, self._host.root, self._host.fs_root)
            if name == "DownloadBundle" and self.bundle_file is not None:
                full["bundle"] = await self._host.upload_bundle(
                    connection, command, self.bundle_file, self.agent.max_revisions
                )
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
            assert self._host.agent_path is not None
            self._agent = await connection.create_process(
                f"{shlex.quote(self.python)} {shlex.quote(self._host.agent_path)} serve "
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
                await asyncio.wait_for(
                    process.wait(), self.agent.kill_grace_seconds + STOP_WAIT_EXTRA
                )
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
