"""A local instance: a folder on this machine, with the agent run in this process.

<root>/agent  the agent's deployment root (deployment-instructions, archives, logs)
<root>/fs     where the appspec's absolute destinations land (`/srv/app` -> <root>/fs/srv/app)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from engine.host import agent
from engine.host.results import CommandResult
from engine.targets.base import Emit


class LocalTarget:
    def __init__(
        self,
        name: str,
        root: Path,
        environment: dict[str, str],
        *,
        max_revisions: int = 5,
        kill_grace_seconds: float = 10.0,
        max_bundle_bytes: int | None = None,
        secret_names: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.root = root
        self.environment = environment
        self.secret_names = secret_names  # the variables whose values the agent masks in logs
        self.max_revisions = max_revisions
        self.kill_grace_seconds = kill_grace_seconds
        self.max_bundle_bytes = max_bundle_bytes

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
        full = {
            **command,
            "root_dir": str(self.agent_root),
            "fs_root": str(self.fs_root),
            "environment": self.environment,
            "secret_environment": list(self.secret_names),
            "max_revisions": self.max_revisions,
            "kill_grace_seconds": self.kill_grace_seconds,
            "max_bundle_bytes": self.max_bundle_bytes,
        }
        return await agent.execute(full, emit)

    async def close(self) -> None:
        return None
