"""Blue/green test fleets: real web instances (tests/traffic/backend.py started by each
revision's ApplicationStart) behind the group's balancer, deployed through the engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.api import CreateDeploymentRequest, Engine, RunMode
from engine.model import DeploymentInfo
from engine.workspace import load_workspace
from tests.cli.test_local_cli import DEPLOYDECK, REPO
from tests.traffic.conftest import free_port, http_get
from tests.traffic.web_revision import (
    AWAIT_LISTENING,
    FAST_TRAFFIC,
    STOP_SERVER,
    hooked_revision,
)

BACKEND = Path(__file__).parents[1] / "traffic" / "backend.py"
EVENTS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
)
# Every hook logs "<event> <version>" to the instance's own events.log (in its fs folder, so a
# copied instance has its own). ApplicationStop stops the running server; ApplicationStart
# starts this version's once $GATES/hang-<version> is gone. Any event touches
# $GATES/at-<event>-<version>[-<instance>] when it runs, waits while
# $GATES/hold-<event>-<version> exists, then fails if $GATES/fail-<event>-<version> exists.
HOOK = textwrap.dedent(
    """\
    #!/bin/sh
    set -eu
    here="$DEPLOYDECK_FS_ROOT"
    dir="$here"
    mkdir -p "$here"
    echo "$LIFECYCLE_EVENT {version}" >> "$here/events.log"
    touch "$GATES/at-$LIFECYCLE_EVENT-{version}" \
      "$GATES/at-$LIFECYCLE_EVENT-{version}-$(basename "$(dirname "$here")")"
    while [ -e "$GATES/hold-$LIFECYCLE_EVENT-{version}" ]; do sleep 0.05; done
    if [ -e "$GATES/fail-$LIFECYCLE_EVENT-{version}" ]; then exit 3; fi
    case "$LIFECYCLE_EVENT" in
      ApplicationStop)
"""
    + STOP_SERVER
    + """\
      ApplicationStart)
        while [ -e "$GATES/hang-{version}" ]; do sleep 0.05; done
        : > "$here/server.log"
        nohup "$PYTHON" -u "$BACKEND" --port "$WEB_PORT" --version {version} \\
          > "$here/server.log" 2>&1 &
        echo $! > "$here/server.pid"
        echo $! >> "$GATES/pids"
"""
    + AWAIT_LISTENING
    + """\
    esac
    """
)
FAST_BALANCER = {"port_env": "WEB_PORT", **FAST_TRAFFIC}


def web_revision(root: Path, version: str) -> Path:
    return hooked_revision(root, version, HOOK, EVENTS)


class BlueGreenFleet:
    """Blue instances b01, b02 (role=web) and, for DISCOVER_EXISTING, green g01, g02
    (fleet=green), each with its own WEB_PORT. `seed()` puts v1 on blue with an in-place
    deployment; `blue_green()` then turns the group blue/green with the given settings."""

    def __init__(
        self,
        folder: Path,
        balancer: dict[str, Any],
        discover: int = 0,
        run_mode: RunMode = "inline",
    ) -> None:
        self.folder = folder
        self.run_mode: RunMode = run_mode
        self.gates = folder / "gates"
        self.gates.mkdir(parents=True)
        self.lb_port = free_port()
        self.balancer = {**FAST_BALANCER, "port": self.lb_port, **balancer}
        self.blue = ["b01", "b02"]
        self.discovered = [f"g{n:02d}" for n in range(1, discover + 1)]
        self.instances: dict[str, Any] = {}
        for name in self.blue + self.discovered:
            tags = {"role": "web"} if name in self.blue else {"fleet": "green"}
            self.instances[name] = {
                "tags": tags,
                "environment": {
                    "WEB_PORT": str(free_port()),
                    "GATES": str(self.gates),
                    "PYTHON": sys.executable,
                    "BACKEND": str(BACKEND),
                },
            }
        self.path = folder / "deploydeck.yml"
        self.engine: Engine | None = None
        self.style({"deployment_type": "IN_PLACE"}, None)

    def style(self, style: dict[str, Any], blue_green: dict[str, Any] | None, **group: Any) -> None:
        """Rewrite the workspace with this group style and open a fresh engine on it."""
        body: dict[str, Any] = {
            "deployment_config": "CodeDeployDefault.OneAtATime",
            "tag_filters": [{"key": "role", "value": "web"}],
            "deployment_style": style,
            "load_balancer": self.balancer,
            **group,
        }
        if blue_green is not None:
            body["blue_green"] = blue_green
        document = {
            "settings": {"kill_grace_seconds": 1},
            "applications": {"app": {"deployment_groups": {"fleet": body}}},
            "instances": self.instances,
        }
        self.path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.engine = Engine(load_workspace(self.path).unwrap(), run_mode=self.run_mode)

    async def blue_green(self, blue_green: dict[str, Any], **group: Any) -> None:
        if self.engine is not None:
            await self.engine.aclose()
        self.style(
            {"deployment_type": "BLUE_GREEN", "deployment_option": "WITH_TRAFFIC_CONTROL"},
            blue_green,
            **group,
        )

    @property
    def e(self) -> Engine:
        assert self.engine is not None
        return self.engine

    async def seed(self) -> None:
        """v1 on blue, in place (no traffic control)."""
        final = await self.e.wait(await self.deploy("v1"), timeout=300)
        assert final.status == "Succeeded", final.error_message

    async def deploy(self, version: str) -> str:
        revision = self.folder / "revisions" / version
        if not revision.exists():
            web_revision(self.folder / "revisions", version)
        created = await self.e.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=revision)
        )
        return created.id

    def root(self, name: str) -> Path:
        return self.folder / ".deploydeck" / "instances" / name

    def events(self, name: str) -> list[str]:
        log = self.root(name) / "fs" / "events.log"
        return log.read_text().splitlines() if log.exists() else []

    def server_running(self, name: str) -> bool:
        pid_file = self.root(name) / "fs" / "server.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text()), 0)
        except ProcessLookupError:
            return False
        return True

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*DEPLOYDECK, *args, "-w", str(self.path)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    async def until(self, deployment_id: str, check: Any) -> DeploymentInfo:
        """Poll the deployment until `check(it)` holds (bounded by pytest's timeout)."""
        while True:
            info = self.e.get_deployment(deployment_id)
            if check(info):
                return info
            assert not info.terminal, f"{deployment_id} ended {info.status}: {info.error_message}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.engine is not None:
            for deployment in self.engine.list_deployments():  # a failed test's, still waiting
                if not deployment.terminal:
                    with contextlib.suppress(Exception):
                        await self.engine.stop_deployment(deployment.id, auto_rollback=False)
            await self.engine.aclose()
        pids = self.gates / "pids"
        if pids.exists():
            for line in pids.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(line), signal.SIGKILL)


async def until_exists(path: Path) -> None:
    while not path.exists():
        await asyncio.sleep(0.05)


async def until_listening(port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)


async def versions(port: int, count: int = 20) -> list[str]:
    """X-Version of `count` requests, each on a new connection (so each is balanced anew)."""
    found = []
    for _ in range(count):
        status, headers, _ = await http_get(port)
        assert status == 200, status
        found.append(headers["x-version"])
    return found


def terminate_after(minutes: float = 30) -> dict[str, Any]:
    """A blue_green section that terminates blue after a termination wait of `minutes`."""
    return {
        "terminate_blue_instances_on_deployment_success": {
            "action": "TERMINATE",
            "termination_wait_time_in_minutes": minutes,
        }
    }


def ready_wait(minutes: float = 30) -> dict[str, Any]:
    """A blue_green section that waits in Ready (then stops) for `minutes`."""
    return {
        "deployment_ready_option": {
            "action_on_timeout": "STOP_DEPLOYMENT",
            "wait_time_in_minutes": minutes,
        }
    }


async def deploy_to_ready(fleet: BlueGreenFleet, minutes: float = 30) -> DeploymentInfo:
    """v1 seeded on blue, then v2 blue/green, waiting in Ready for `minutes`."""
    await fleet.seed()
    await fleet.blue_green(ready_wait(minutes))
    deployment = await fleet.deploy("v2")
    return await fleet.until(deployment, waiting_in("READY_WAIT"))


async def deploy_to_termination_wait(fleet: BlueGreenFleet, minutes: float = 30) -> str:
    """v1 seeded on blue, then v2 blue/green with traffic on green and blue waiting
    `minutes` for its termination; the deployment's id."""
    await fleet.seed()
    await fleet.blue_green(
        {
            **terminate_after(minutes),
        }
    )
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    return deployment


def waiting_in(wait_type: str) -> Any:
    return lambda d: d.blue_green is not None and d.blue_green.wait_type == wait_type


@pytest.fixture
async def bg_fleet(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[BlueGreenFleet] = []

    def make(
        balancer: dict[str, Any] | None = None, folder: Path = tmp_path, **kwargs: Any
    ) -> BlueGreenFleet:
        made.append(BlueGreenFleet(folder, balancer or {"kind": "builtin"}, **kwargs))
        return made[-1]

    yield make
    for fleet in made:
        await fleet.close()
