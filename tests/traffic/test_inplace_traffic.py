"""In-place deployments with traffic control, end to end: real web instances (tests/traffic/
backend.py started by the revision's ApplicationStart), a deployment through the engine, and a
load generator sending requests through the group's balancer while instances are replaced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, RunMode
from engine.clock import RealClock
from engine.model import TrafficHealth, TrafficState
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.model import HealthCheck, Target, TrafficSettings
from engine.workspace import load_workspace
from tests.raw_store import raw_store
from tests.traffic.conftest import free_port
from tests.traffic.loadgen import LoadReport, run_load
from tests.traffic.web_revision import (
    AWAIT_LISTENING,
    FAST_TRAFFIC,
    STOP_SERVER,
    hooked_revision,
)
from tui.commands.report import deployment_json

BACKEND = Path(__file__).with_name("backend.py")
BLOCK_EVENTS = ("BeforeBlockTraffic", "AfterBlockTraffic")
ALLOW_EVENTS = ("BeforeAllowTraffic", "AfterAllowTraffic")
EVENTS = (
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)
# Every hook logs "<event> <version>" to the instance's events.log. ApplicationStop stops the
# running server, ApplicationStart starts this version's (after $STATE/hang-<version> goes); BeforeBlockTraffic waits until
# $LOAD_STARTED exists (so traffic flows before the first block); AfterAllowTraffic marks the
# instance allowed and, when $HOLD names a file, waits until it exists (the last instance's).
HOOK = textwrap.dedent(
    """\
    #!/bin/sh
    set -eu
    dir="$STATE"
    echo "$LIFECYCLE_EVENT {version}" >> "$STATE/events.log"
    case "$LIFECYCLE_EVENT" in
      BeforeBlockTraffic)
        while [ -n "${{LOAD_STARTED:-}}" ] && [ ! -e "$LOAD_STARTED" ]; do sleep 0.05; done ;;
      ApplicationStop)
"""
    + STOP_SERVER
    + """\
      ApplicationStart)
        while [ -e "$STATE/hang-{version}" ]; do sleep 0.05; done
        : > "$STATE/server.log"
        health=200
        if [ "${{BAD_HEALTH_VERSION:-}}" = {version} ]; then health=500; fi
        nohup "$PYTHON" -u "$BACKEND" --port "$WEB_PORT" --version {version} \\
          --health-status "$health" > "$STATE/server.log" 2>&1 &
        echo $! > "$STATE/server.pid"
"""
    + AWAIT_LISTENING
    + """\
      AfterAllowTraffic)
        touch "$STATE/allowed-{version}"
        while [ -n "${{HOLD:-}}" ] && [ ! -e "$HOLD" ]; do sleep 0.05; done ;;
    esac
    """
)
FAST = FAST_TRAFFIC


def web_revision(root: Path, version: str) -> Path:
    return hooked_revision(root, version, HOOK, EVENTS)


class WebFleet:
    """Two local instances, each with its own WEB_PORT and state folder."""

    def __init__(
        self,
        folder: Path,
        balancer: dict[str, Any] | None,
        count: int = 2,
        env: dict[str, str] | None = None,
        run_mode: RunMode = "inline",
    ) -> None:
        self.folder = folder
        self.names = [f"i{n:02d}" for n in range(1, count + 1)]
        self.ports = {name: free_port() for name in self.names}
        self.load_started = folder / "load-started"
        self.hold = folder / "hold"
        instances = {}
        for name in self.names:
            self.state(name).mkdir(parents=True)
            instances[name] = {
                "tags": {"role": "web"},
                "environment": {
                    "WEB_PORT": str(self.ports[name]),
                    "STATE": str(self.state(name)),
                    "PYTHON": sys.executable,
                    "BACKEND": str(BACKEND),
                    "LOAD_STARTED": str(self.load_started),
                    **(env or {}),
                },
            }
        # The last instance's AfterAllowTraffic holds the run (and its balancer) open.
        instances[self.names[-1]]["environment"]["HOLD"] = str(self.hold)
        group: dict[str, Any] = {
            "deployment_config": "CodeDeployDefault.HalfAtATime",
            "tag_filters": [{"key": "role", "value": "web"}],
        }
        if balancer is not None:
            group["deployment_style"] = {"deployment_option": "WITH_TRAFFIC_CONTROL"}
            group["load_balancer"] = {"port_env": "WEB_PORT", **FAST, **balancer}
        document = {
            "settings": {"kill_grace_seconds": 1},
            "applications": {"app": {"deployment_groups": {"fleet": group}}},
            "instances": instances,
        }
        self.path = folder / "deploydeck.yml"
        self.path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.engine = Engine(load_workspace(self.path).unwrap(), run_mode=run_mode)

    def state(self, name: str) -> Path:
        return self.folder / "state" / name

    def events(self, name: str) -> list[str]:
        return (self.state(name) / "events.log").read_text().splitlines()

    async def deploy(self, version: str) -> str:
        revision = web_revision(self.folder / "revisions", version)
        created = await self.engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=revision)
        )
        return created.id

    async def close(self) -> None:
        await self.engine.aclose()
        for name in self.names:
            pid_file = self.state(name) / "server.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
async def web_fleet(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[WebFleet] = []

    def make(balancer: dict[str, Any] | None, folder: Path = tmp_path, **kwargs: Any) -> WebFleet:
        made.append(WebFleet(folder, balancer, **kwargs))
        return made[-1]

    yield make
    for fleet in made:
        await fleet.close()


async def until_listening(port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)


async def until_exists(*paths: Path) -> None:
    while not all(p.exists() for p in paths):
        await asyncio.sleep(0.05)


# Each request takes 0.2 s and gets its response head at once: a request under way when its
# instance's server stops fails (the proxy cannot retry after the head), unless it was drained.
LOAD: dict[str, Any] = {
    "total": 100_000,
    "concurrency": 4,
    "pause": 0.02,
    "path": "/stream?seconds=0.2",
}


async def zero_downtime_run(fleet: WebFleet, lb_port: int) -> tuple[LoadReport, str]:
    """Deploy v1, then v2 with load running through the balancer the whole time v2 deploys
    (until every instance is back in service with v2: its AfterAllowTraffic holds the run)."""
    fleet.hold.touch()  # v1's deployment is not held
    first = await fleet.deploy("v1")
    assert (await fleet.engine.wait(first, timeout=300)).status == "Succeeded"
    fleet.hold.unlink()
    second = await fleet.deploy("v2")
    await until_listening(lb_port)
    done = asyncio.Event()
    load = asyncio.create_task(run_load("127.0.0.1", lb_port, until=done, **LOAD))
    await asyncio.sleep(0.5)
    fleet.load_started.touch()
    await until_exists(*(fleet.state(n) / "allowed-v2" for n in fleet.names))
    await asyncio.sleep(0.5)
    done.set()
    report = await load
    fleet.hold.touch()
    final = await fleet.engine.wait(second, timeout=300)
    assert final.status == "Succeeded", final.error_message
    return report, second


def assert_served_through(report: LoadReport) -> None:
    """Not one request failed, and answers went from v1 to v2 for good."""
    assert report.failures == []
    assert report.ok > 50
    assert report.versions[0] == "v1"
    assert set(report.versions[-20:]) == {"v2"}


async def test_in_place_half_at_a_time_through_the_builtin_balancer_drops_no_request(
    web_fleet: Any,
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port})
    report, second = await zero_downtime_run(fleet, lb_port)
    assert_served_through(report)
    for name in fleet.names:
        assert_event_order(fleet.events(name))
    assert_traffic_reported(fleet, second)


def assert_traffic_reported(fleet: WebFleet, deployment_id: str) -> None:
    """Each instance's balancer states were journaled (drained under load, out, back in) and
    the last of them reads back through the facade and get-deployment's JSON."""
    changes = [
        e.event
        for e in raw_store(fleet.engine).journal(deployment_id)
        if isinstance(e.event, ev.InstanceTrafficChanged)
    ]
    for name in fleet.names:
        states = [c.state for c in changes if c.instance == name]
        assert TrafficState.OUT_OF_SERVICE in states
        assert states[-1] is TrafficState.IN_SERVICE
    # A drain with no request open ends between two samples: under load, some instance's shows
    assert TrafficState.DRAINING in {c.state for c in changes}
    final = fleet.engine.get_deployment(deployment_id)
    assert [(t.instance, t.state, t.health) for t in final.traffic] == [
        (name, TrafficState.IN_SERVICE, TrafficHealth.OK) for name in fleet.names
    ]
    shown = deployment_json(fleet.engine, final)["deploymentInfo"]["loadBalancerTargets"]
    assert [(t["instance"], t["state"], t["health"]) for t in shown] == [
        (name, "in_service", "ok") for name in fleet.names
    ]
    assert all(t["requestsServed"] > 0 for t in shown)


def assert_event_order(log: list[str]) -> None:
    """v2's run on one instance: the block hooks are v1's (the last good revision), the rest
    v2's, in CodeDeploy's order."""
    second = log[log.index("AfterAllowTraffic v1") + 1 :]
    assert second == [
        "BeforeBlockTraffic v1",
        "AfterBlockTraffic v1",
        "ApplicationStop v1",
        "BeforeInstall v2",
        "AfterInstall v2",
        "ApplicationStart v2",
        "ValidateService v2",
        "BeforeAllowTraffic v2",
        "AfterAllowTraffic v2",
    ]


async def test_the_same_run_without_traffic_control_fails_requests(web_fleet: Any) -> None:
    """The control for the test above: the same instances, load and balancer (started by the
    test, so nothing blocks or allows), deployed without traffic control: servers stop under
    requests, so requests fail."""
    fleet = web_fleet(None)
    first = await fleet.deploy("v1")
    assert (await fleet.engine.wait(first, timeout=300)).status == "Succeeded"
    lb_port = free_port()
    check = HealthCheck("/healthz", 0.2, 1, 2, 2)
    targets = [Target(n, "127.0.0.1", fleet.ports[n]) for n in fleet.names]
    balancer = BuiltinBalancer(targets, TrafficSettings(check, 10, 30), RealClock(), port=lb_port)
    await balancer.start()
    try:
        done = asyncio.Event()
        load = asyncio.create_task(run_load("127.0.0.1", lb_port, until=done, **LOAD))
        await asyncio.sleep(0.5)
        second = await fleet.deploy("v2")
        assert (await fleet.engine.wait(second, timeout=300)).status == "Succeeded"
        await asyncio.sleep(1.0)
        done.set()
        report = await load
    finally:
        await balancer.close()
    assert report.failures, "without traffic control some requests must fail"
    assert report.versions[0] == "v1" and report.versions[-1] == "v2"


async def test_in_place_through_an_owned_haproxy_drops_no_request(
    short_dir: Path,  # before web_fleet: removed after the fleet's servers are ended
    web_fleet: Any,
    haproxy_binary: str,
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "haproxy", "port": lb_port}, short_dir)
    report, _ = await zero_downtime_run(fleet, lb_port)
    assert_served_through(report)


def event_status(fleet: WebFleet, deployment_id: str, instance: str, event: str) -> str:
    """The event's status; Pending until the run has recorded the instance."""
    found = fleet.engine.get_deployment(deployment_id).instance(instance)
    return "Pending" if found is None else {e.name: e.status for e in found.events}[event]


def notes(fleet: WebFleet, deployment_id: str) -> list[str]:
    return [
        e.event.message
        for e in raw_store(fleet.engine).journal(deployment_id)
        if isinstance(e.event, ev.Note)
    ]


async def test_a_stop_mid_drain_puts_the_untouched_instance_back_in_service(
    web_fleet: Any,
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port})
    fleet.hold.touch()
    first = await fleet.deploy("v1")
    assert (await fleet.engine.wait(first, timeout=300)).status == "Succeeded"
    second = await fleet.deploy("v2")
    await until_listening(lb_port)
    # Slow requests on both instances: i01's drain waits for its own (10 s at most).
    slow = [await asyncio.open_connection("127.0.0.1", lb_port) for _ in range(4)]
    for _, writer in slow:
        writer.write(b"GET /slow?seconds=20 HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
    await asyncio.sleep(0.5)  # forwarded to the instances before i01's block begins
    fleet.load_started.touch()

    while event_status(fleet, second, "i01", "BlockTraffic") == "Pending":
        await asyncio.sleep(0.05)
    assert (
        event_status(fleet, second, "i01", "BlockTraffic") == "InProgress"
    )  # draining: a slow request is still under way
    await fleet.engine.stop_deployment(second, auto_rollback=False)
    final = await fleet.engine.wait(second, timeout=300)
    for _, writer in slow:
        writer.close()
    assert final.status == "Stopped"
    i01 = {e.name: e.status for e in final.instance("i01").events}  # type: ignore[union-attr]
    assert i01["BlockTraffic"] == "Failed"
    assert i01["ApplicationStop"] == i01["Install"] == "Skipped"
    assert fleet.events("i01")[-1] == "BeforeBlockTraffic v1"  # v1 still installed, untouched
    assert any(
        n.startswith("i01 was stopped before any install event: back in service")
        for n in notes(fleet, second)
    )


async def test_an_instance_without_its_port_fails_the_deployment_saying_what_to_add(
    web_fleet: Any,
) -> None:
    fleet = web_fleet({"kind": "builtin", "port_env": "APP_PORT"})
    final = await fleet.engine.wait(await fleet.deploy("v1"), timeout=300)
    assert final.status == "Failed"
    assert final.error_code == "LOAD_BALANCER_ERROR"
    assert final.error_message is not None
    assert final.error_message.startswith(
        "instance i01 has no APP_PORT in its environment, so the load balancer does not know "
        "its port"
    )
    assert {i.status for i in final.instances} == {"Skipped"}
    assert not (fleet.state("i01") / "events.log").exists()  # nothing ran


async def test_a_stop_mid_install_leaves_the_instance_out_until_the_rollback_allows_it(
    web_fleet: Any,
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port})
    fleet.hold.touch()
    fleet.load_started.touch()
    first = await fleet.deploy("v1")
    assert (await fleet.engine.wait(first, timeout=300)).status == "Succeeded"
    (fleet.state("i01") / "hang-v2").touch()
    second = await fleet.deploy("v2")
    while event_status(fleet, second, "i01", "ApplicationStart") != "InProgress":
        await asyncio.sleep(0.05)
    await fleet.engine.stop_deployment(second, auto_rollback=True)
    stopped = await fleet.engine.wait(second, timeout=300)
    assert stopped.status == "Stopped"
    assert not any("back in service" in n for n in notes(fleet, second))  # i01 stays out
    while not (stopped := fleet.engine.get_deployment(second)).rollback.rollback_deployment_id:
        await asyncio.sleep(0.05)
    rollback_id = stopped.rollback.rollback_deployment_id
    rollback = await fleet.engine.wait(rollback_id, timeout=300)
    assert rollback.status == "Succeeded", rollback.error_message
    assert [i.name for i in rollback.instances] == ["i01"]
    events = {e.name: e.status for e in rollback.instances[0].events}
    assert events["BlockTraffic"] == events["AllowTraffic"] == "Succeeded"
    assert fleet.events("i01")[-2:] == ["BeforeAllowTraffic v1", "AfterAllowTraffic v1"]
