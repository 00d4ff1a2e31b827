"""Drive the host agent directly: revisions as real folders, commands as the engine sends them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.host.results import CommandResult
from engine.model import SERVER_IN_PLACE_EVENTS as SERVER_EVENTS


def write_tree(root: Path, files: Mapping[str, str | tuple[str, int]]) -> Path:
    """Files as {relative path: content or (content, mode)}; scripts get mode 0755 by default."""
    for relative, spec in files.items():
        content, mode = spec if isinstance(spec, tuple) else (spec, None)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if mode is None and content.startswith("#!"):
            mode = 0o755
        if mode is not None:
            path.chmod(mode)
    return root


def hook(location: str, timeout: int = 3600, runas: str | None = None, sudo: bool = False) -> dict:
    return {"location": location, "timeout": timeout, "runas": runas, "sudo": sudo}


def appspec(
    files: Iterable[tuple[str, str]] = (),
    hooks: Mapping[str, list[dict]] | None = None,
    permissions: list[dict] | None = None,
    file_exists_behavior: str | None = None,
) -> dict[str, Any]:
    """An appspec in the agent's JSON form (docs/agent-appspec.md)."""
    return {
        "version": 0.0,
        "os": "linux",
        "file_exists_behavior": file_exists_behavior,
        "files": [{"source": s, "destination": d} for s, d in files],
        "permissions": permissions or [],
        "hooks": dict(hooks or {}),
    }


def permission(obj: str, **values: Any) -> dict:
    base = {
        "object": obj,
        "pattern": "**",
        "except": [],
        "type": ["file", "directory"],
        "owner": None,
        "group": None,
        "mode": None,
        "acls": None,
        "context": None,
    }
    base.update(values)
    return base


@dataclass
class Host:
    """One agent root on disk and the deployments made to it."""

    root: Path
    group: str = "dg-1"
    counter: int = 0
    messages: list[dict] = field(default_factory=list)

    def command(
        self, event: str, deployment_id: str, revision: Path, spec: dict, **extra: Any
    ) -> dict:
        kind = "directory" if revision.is_dir() else extra.pop("bundle_type", "tgz")
        command = {
            "command": event,
            "deployment_id": deployment_id,
            "deployment_group_id": self.group,
            "deployment_group_name": "TestGroup",
            "application_name": "TestApp",
            "root_dir": str(self.root),
            "bundle": {"path": str(revision), "type": kind},
            "appspec": spec,
            "file_exists_behavior": "DISALLOW",
            "kill_grace_seconds": 1,
        }
        command.update(extra)
        return command

    async def deploy(
        self,
        revision: Path,
        spec: dict,
        events: Iterable[str] = SERVER_EVENTS,
        deployment_id: str | None = None,
        stop_on_failure: bool = True,
        **extra: Any,
    ) -> list[CommandResult]:
        from engine.host import agent

        self.counter += 1
        deployment_id = deployment_id or f"d-TEST{self.counter:05d}"
        results = []
        for event in events:
            result = await agent.execute(
                self.command(event, deployment_id, revision, spec, **extra), self.messages.append
            )
            results.append(result)
            if not result.ok and stop_on_failure:
                break
        return results

    def deployment_dir(self, deployment_id: str) -> Path:
        return self.root / self.group / deployment_id


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path below root with its kind, mode and content (or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[str(path.relative_to(root))] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[str(path.relative_to(root))] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                found[str(path.relative_to(root))] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    path.read_text(),
                )
    return found


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
