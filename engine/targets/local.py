"""A local instance: a folder on this machine, with the agent run in this process.

<root>/agent  the agent's deployment root (deployment-instructions, archives, logs)
<root>/fs     where the appspec's absolute destinations land (`/srv/app` -> <root>/fs/srv/app)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.host import agent, hooks
from engine.host.results import CommandResult
from engine.targets.base import AgentMessage, AgentSettings, Emit

if TYPE_CHECKING:
    from engine.targets.file_workers import FileWorkers
    from engine.targets.hook_launcher import HookLauncher

# The worker processes this process's local instances hand their file work to (a runner sets
# them for its life); None: the agent's threads do it.
_file_workers: FileWorkers | None = None


def use_file_workers(workers: FileWorkers | None) -> None:
    global _file_workers
    _file_workers = workers


_launcher: HookLauncher | None = None


def use_launcher(launcher: HookLauncher | None) -> None:
    """Start this process's local hook scripts through `launcher` (None: the process itself)."""
    global _launcher
    _launcher = launcher
    hooks.use_launcher(launcher)


def prepare_launcher() -> None:
    """Local instances are about to be deployed to: start the hook launcher (if any) now."""
    if _launcher is not None:
        _launcher.prestart()


class ProcessWatch(Protocol):
    """Told of each hook's process group while it runs (a runner's watchdog, which ends
    them if the runner dies)."""

    def watch(self, pgid: int) -> None: ...

    def forget(self, pgid: int) -> None: ...


class LocalTarget:
    def __init__(
        self,
        name: str,
        root: Path,
        agent: AgentSettings,
        *,
        watch: ProcessWatch | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.agent = agent
        self.watch = watch

    @property
    def host(self) -> str:
        return f"local:{self.root}"

    @property
    def agent_root(self) -> Path:
        return self.root / "agent"

    @property
    def fs_root(self) -> Path:
        return self.root / "fs"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        yield  # a folder needs nothing held

    async def run(self, command: dict[str, Any], emit: Emit) -> CommandResult:
        full = self.agent.command(command, str(self.agent_root), str(self.fs_root))
        work = _file_workers.run if _file_workers is not None else None
        if self.watch is None:
            return await agent.execute(full, emit, work)
        watch = self.watch
        running: list[int] = []  # the script now running (scripts of one event run in turn)

        def watched(message: AgentMessage) -> None:
            if message.get("type") == "script_spawned" and isinstance(message.get("pid"), int):
                running.append(message["pid"])
                watch.watch(message["pid"])
            elif message.get("type") == "script_finished" and running:
                watch.forget(running.pop())
            emit(message)

        try:
            return await agent.execute(full, watched, work)
        finally:
            for pgid in running:  # stopped: the agent has ended its group
                watch.forget(pgid)

    async def close(self) -> None:
        return None
