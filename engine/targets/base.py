"""The protocol every target (local folder, SSH host) implements."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from engine.host.results import CommandResult

AgentMessage = dict[str, Any]
Emit = Callable[[AgentMessage], None]


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
