"""Deployments to the SSH fleet through the engine's facade, and what the tests read back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine
from engine.model import DeploymentInfo
from engine.workspace import load_workspace
from tests.command_line import DEPLOYDECK as DEPLOYDECK
from tests.command_line import REPO as REPO
from tests.command_line import dd as dd
from tests.ssh.sshd import SshFleet, SshHost

_ENGINES: list[Engine] = []


def engine_for(path: Path) -> Engine:
    """An inline engine (runner in this process) on the workspace at `path`."""
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    _ENGINES.append(engine)
    return engine


async def close_engines() -> None:
    while _ENGINES:
        await _ENGINES.pop().aclose()


def request(revision: Path, **kw) -> CreateDeploymentRequest:
    return CreateDeploymentRequest("app", "fleet", revision_path=revision, **kw)


async def deploy(engine: Engine, revision: Path, timeout: float = 180, **kw) -> DeploymentInfo:
    created = await engine.create_deployment(request(revision, **kw))
    return await engine.wait(created.id, timeout=timeout)


def journal(engine: Engine, deployment_id: str) -> list[ev.Event]:
    return [e.event for e in engine.journal(deployment_id)]


def connecting(engine: Engine, deployment_id: str) -> Counter[str]:
    """How many times the deployment opened a connection to each instance."""
    return Counter(
        e.instance
        for e in journal(engine, deployment_id)
        if isinstance(e, ev.InstanceConnection) and e.state == "connecting"
    )


def batches_of(engine: Engine, deployment_id: str) -> list[tuple[str, ...]]:
    return [e.instances for e in journal(engine, deployment_id) if isinstance(e, ev.BatchStarted)]


def hook_lines(engine: Engine, deployment_id: str, instance: str) -> list[str]:
    return [
        e.line.rstrip("\n")
        for e in journal(engine, deployment_id)
        if isinstance(e, ev.HookOutput) and e.instance == instance
    ]


def site(host: SshHost) -> Path:
    """Where make_revision's files land on a host: /srv/app under its fs_root."""
    return host.fs_root / "srv" / "app"


def with_timeout(revision: Path, event: str, seconds: int) -> Path:
    """Set the timeout of `event`'s scripts in the revision's appspec."""
    path = revision / "appspec.yml"
    appspec = yaml.safe_load(path.read_text())
    for script in appspec["hooks"][event]:
        script["timeout"] = seconds
    path.write_text(yaml.safe_dump(appspec, sort_keys=False))
    return revision


async def wait_for(
    condition: Callable[[], object], timeout: float = 60, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def pids_in(pid_file: Path) -> list[int]:
    return [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []


@dataclass
class ConnectionSamples:
    """What the sshds saw while sampled: the most connections each host had at once, and
    the most hosts connected at once."""

    per_host: dict[str, int] = field(default_factory=dict)
    most_hosts: int = 0


@contextlib.asynccontextmanager
async def sampling_connections(fleet: SshFleet) -> AsyncIterator[ConnectionSamples]:
    """Samples the fleet's sshd connections every 20 ms while the block runs."""
    samples = ConnectionSamples()
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            counts = {name: host.connections() for name, host in fleet.hosts.items()}
            for name, count in counts.items():
                samples.per_host[name] = max(samples.per_host.get(name, 0), count)
            samples.most_hosts = max(samples.most_hosts, sum(1 for c in counts.values() if c))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        stop.set()
        await sampler


def names(fleet: SshFleet, exclude: Sequence[str] = ()) -> list[str]:
    return [n for n in fleet.hosts if n not in exclude]


def write_revision(
    root: Path,
    version: str,
    scripts: dict[str, str],
    *,
    options: dict[str, dict] | None = None,
    files: dict[str, str] | None = None,
    timeout: int = 120,
) -> Path:
    """A revision folder: `files` under /srv/app, `scripts[event]` as hooks/<event>.sh (with
    `options[event]` merged into its appspec entry: runas, sudo, timeout)."""
    files = files or {"version.txt": f"{version}\n"}
    hooks = {}
    for event in scripts:
        entry = {"location": f"hooks/{event}.sh", "timeout": timeout}
        entry.update((options or {}).get(event, {}))
        hooks[event] = [entry]
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": hooks,
    }
    folder = root / version
    tree = {"appspec.yml": yaml.safe_dump(appspec, sort_keys=False)}
    tree.update({f"site/{name}": content for name, content in files.items()})
    tree.update({f"hooks/{event}.sh": script for event, script in scripts.items()})
    for relative, content in tree.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if relative.startswith("hooks/"):
            path.chmod(0o755)
    return folder


def agent_processes(host: SshHost) -> list[int]:
    """Agent processes started from this host's cache (its home), running on the machine."""
    from tests.ssh.sshd import alive

    marker = f"{host.home}/.deploydeck/agent/".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if marker in f.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return [p for p in found if alive(p)]
