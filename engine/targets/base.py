"""The protocol every target (local folder, SSH host) implements."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from engine.host.results import CommandResult

AgentMessage = dict[str, Any]
Emit = Callable[[AgentMessage], None]


@dataclass(frozen=True)
class AgentSettings:
    """What every agent command for one instance carries besides the command itself."""

    environment: dict[str, str]
    secret_names: tuple[str, ...] = ()  # the variables whose values the agent masks in logs
    max_revisions: int = 5
    kill_grace_seconds: float = 10.0
    max_bundle_bytes: int | None = None

    def command(
        self, command: dict[str, Any], root_dir: str | None, fs_root: str | None
    ) -> dict[str, Any]:
        """`command` as the agent takes it: with the agent's root, the fs root and these."""
        return {
            **command,
            "root_dir": root_dir,
            "fs_root": fs_root,
            "environment": self.environment,
            "secret_environment": list(self.secret_names),
            "max_revisions": self.max_revisions,
            "kill_grace_seconds": self.kill_grace_seconds,
            "max_bundle_bytes": self.max_bundle_bytes,
        }


class Target(Protocol):
    """One instance as the engine sees it: run one lifecycle command there."""

    name: str

    @property
    def host(self) -> str:
        """Where the instance is, for people: a folder, or user@host:port."""
        ...

    def session(self) -> AbstractAsyncContextManager[None]:
        """The instance's turn in a deployment: its commands run inside it. An SSH host waits
        here for one of `ssh_max_parallel` slots, and is let go at the end."""
        ...

    async def run(self, command: dict[str, Any], emit: Emit) -> CommandResult:
        """Run one agent command; cancellation must end whatever runs on the host."""
        ...

    async def close(self) -> None: ...
