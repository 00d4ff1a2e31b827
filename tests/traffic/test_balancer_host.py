"""The group's balancer host: the built-in proxy or an owned HAProxy runs in a process of its
own that outlives deployments. Real web instances (test_inplace_traffic's WebFleet), real
deployments through the engine, requests through the balancer before, between and during
them; the host's and HAProxy's processes are looked at directly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from engine import events as ev
from engine.api import Engine
from engine.deployments.balancer import balancer_place
from engine.hosting.daemon import HostPlace, stop_host
from engine.traffic.hosted import HostedBalancer
from engine.workspace import load_workspace
from tests.bluegreen.conftest import BlueGreenFleet, bg_fleet, versions  # noqa: F401
from tests.cli.test_local_cli import DEPLOYDECK, REPO
from tests.conftest import require_tool
from tests.traffic.conftest import FAST, free_port, http_get, settle
from tests.traffic.loadgen import LoadReport, run_load
from tests.traffic.test_inplace_traffic import (  # noqa: F401 (web_fleet: the fixture)
    LOAD,
    WebFleet,
    until_exists,
    web_fleet,
)


async def deployed(fleet: WebFleet, version: str) -> str:
    deployment = await fleet.deploy(version)
    final = await fleet.engine.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    return deployment


async def answered(report: LoadReport, more: int) -> int:
    """Wait until `more` further requests were answered; how many were then."""
    target = len(report.versions) + more
    while len(report.versions) < target and not report.failures:
        await asyncio.sleep(0.02)
    return len(report.versions)


def host_pid(fleet: WebFleet) -> int | None:
    return balancer_place(fleet.engine.workspace, "app", "fleet").pid()


def cli(fleet: WebFleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEPLOYDECK, *args, "-w", str(fleet.path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("kind", ["builtin", "haproxy"])
async def test_requests_succeed_between_two_deployments_and_during_both(
    web_fleet: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
) -> None:
    if kind == "haproxy":
        require_tool("haproxy")
    lb_port = free_port()
    fleet = web_fleet({"kind": kind, "port": lb_port}, tmp_path_factory.mktemp("h"))
    fleet.hold.touch()
    fleet.load_started.touch()
    await deployed(fleet, "v1")
    report = LoadReport()
    done = asyncio.Event()
    load = asyncio.create_task(run_load("127.0.0.1", lb_port, until=done, report=report, **LOAD))
    before = await answered(report, 20)  # after v1's deployment ended: its runner is done
    await deployed(fleet, "v2")
    between = await answered(report, 20)
    await deployed(fleet, "v3")
    await answered(report, 20)
    done.set()
    await load
    assert report.failures == []
    assert set(report.versions[:before]) == {"v1"}
    assert set(report.versions[between - 20 : between]) == {"v2"}
    assert set(report.versions[-20:]) == {"v3"}


async def test_the_host_outlives_a_killed_runner_and_the_next_deployment_drives_it(
    web_fleet: Any,  # noqa: F811
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port}, run_mode="process")
    fleet.hold.touch()
    fleet.load_started.touch()
    await deployed(fleet, "v1")
    host = host_pid(fleet)
    assert host is not None
    fleet.hold.unlink()  # v2's last AfterAllowTraffic waits: its runner is there to be killed
    second = await fleet.deploy("v2")
    await until_exists(fleet.state(fleet.names[-1]) / "allowed-v2")
    (runner,) = [
        e.event.pid for e in fleet.engine.journal(second) if isinstance(e.event, ev.EngineAttached)
    ]
    os.kill(runner, signal.SIGKILL)
    while not fleet.engine.runner_gone(second):
        await asyncio.sleep(0.05)
    assert set(await versions(lb_port)) == {"v2"}  # served by the host, no runner left
    assert host_pid(fleet) == host
    await fleet.engine.stop_deployment(second, auto_rollback=False)
    fleet.hold.touch()
    third = await deployed(fleet, "v3")
    assert host_pid(fleet) == host  # the same host, driven again
    assert set(await versions(lb_port)) == {"v3"}
    blocked = [
        e.event.instance
        for e in fleet.engine.journal(third)
        if isinstance(e.event, ev.InstanceTrafficChanged) and e.event.state == "out_of_service"
    ]
    assert set(blocked) == set(fleet.names)  # v3 blocked (and allowed) each through it


async def test_balancer_status_and_stop_end_the_host_and_its_haproxy(
    short_dir: Path,  # before web_fleet: removed after the fleet's servers are ended
    web_fleet: Any,  # noqa: F811
    haproxy_binary: str,
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "haproxy", "port": lb_port}, short_dir)
    fleet.hold.touch()
    fleet.load_started.touch()
    await deployed(fleet, "v1")
    shown = cli(fleet, "balancer", "status", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    (balancer,) = json.loads(shown.stdout)["balancers"]
    host = balancer["host"]
    assert (balancer["application"], balancer["group"]) == ("app", "fleet")
    assert host["kind"] == "haproxy" and host["listen"] == f"127.0.0.1:{lb_port}"
    assert [(i["instance"], i["service"]) for i in host["instances"]] == [
        (name, "in service") for name in fleet.names
    ]
    text = cli(fleet, "balancer", "status", "fleet")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == (
        f"app/fleet: haproxy listening on 127.0.0.1:{lb_port}, host pid {host['pid']}, "
        f"HAProxy pid {host['haproxyPid']}"
    )
    assert all(
        any(line.split()[:1] == [n] for line in text.stdout.splitlines()) for n in fleet.names
    )

    stopped = cli(fleet, "balancer", "stop", "app/fleet")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "app/fleet: balancer host ended, with what it ran"
    assert gone(host["pid"]) and gone(host["haproxyPid"])
    assert await refused(lb_port)
    after = cli(fleet, "balancer", "status", "app/fleet")
    assert after.stdout.startswith("app/fleet: not running")
    started = cli(fleet, "balancer", "start", "fleet")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"app/fleet: haproxy listening on 127.0.0.1:{lb_port}")
    assert set(await versions(lb_port)) == {"v1"}
    assert cli(fleet, "balancer", "stop", "fleet").returncode == 0
    assert await refused(lb_port)
    unknown = cli(fleet, "balancer", "stop", "nope")
    assert unknown.returncode == 1
    assert "no deployment group 'nope' with a load balancer deploydeck runs" in unknown.stdout


async def test_a_changed_port_is_picked_up_at_the_next_deployment(web_fleet: Any) -> None:  # noqa: F811
    old_port, new_port = free_port(), free_port()
    fleet = web_fleet({"kind": "builtin", "port": old_port})
    fleet.hold.touch()
    fleet.load_started.touch()
    await deployed(fleet, "v1")
    host = host_pid(fleet)
    assert set(await versions(old_port)) == {"v1"}
    document = yaml.safe_load(fleet.path.read_text())
    document["applications"]["app"]["deployment_groups"]["fleet"]["load_balancer"]["port"] = (
        new_port
    )
    fleet.path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert set(await versions(old_port)) == {"v1"}  # an edit alone changes nothing
    await fleet.engine.aclose()
    fleet.engine = Engine(load_workspace(fleet.path).unwrap(), run_mode="inline")
    await deployed(fleet, "v2")
    assert await refused(old_port)
    assert set(await versions(new_port)) == {"v2"}
    assert host_pid(fleet) == host  # the listener moved; the host stayed


async def test_an_instance_a_stop_left_out_stays_out_across_deployments(
    web_fleet: Any,  # noqa: F811
) -> None:
    lb_port = free_port()
    fleet = web_fleet({"kind": "builtin", "port": lb_port})
    fleet.hold.touch()
    fleet.load_started.touch()
    await deployed(fleet, "v1")
    (fleet.state("i01") / "hang-v2").touch()
    second = await fleet.deploy("v2")
    while (found := fleet.engine.get_deployment(second).instance("i01")) is None or {
        e.name: e.status for e in found.events
    }["ApplicationStart"] != "InProgress":
        await asyncio.sleep(0.05)
    await fleet.engine.stop_deployment(second, auto_rollback=False)
    assert (await fleet.engine.wait(second, timeout=300)).status == "Stopped"
    (fleet.state("i01") / "hang-v2").unlink()
    status = await fleet.engine.balancer_status("app", "fleet")
    assert status is not None
    assert [(s.name, str(s.service)) for s in status.instances] == [
        ("i01", "out of service"),
        ("i02", "in service"),
    ]
    assert set(await versions(lb_port)) == {"v1"}  # i02 only: i01 is out, between runs too
    assert await fleet.engine.stop_balancer("app", "fleet")
    restarted = await fleet.engine.start_balancer("app", "fleet")  # a new host (a reboot's)
    assert [(s.name, str(s.service)) for s in restarted.instances] == [
        ("i01", "out of service"),
        ("i02", "in service"),
    ]
    await deployed(fleet, "v2")  # AllowTraffic brings it back
    status = await fleet.engine.balancer_status("app", "fleet")
    assert status is not None and {str(s.service) for s in status.instances} == {"in service"}


async def test_after_a_blue_green_deployment_green_keeps_serving_through_the_host(
    bg_fleet: Any,  # noqa: F811
) -> None:
    fleet: BlueGreenFleet = bg_fleet(run_mode="process")
    await fleet.seed()
    await fleet.blue_green({})
    deployment = await fleet.deploy("v2")
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Succeeded", final.error_message
    while not fleet.e.runner_gone(deployment):
        await asyncio.sleep(0.05)
    assert set(await versions(fleet.lb_port)) == {"v2"}
    status = await fleet.e.balancer_status("app", "fleet")
    assert status is not None
    serving = {s.name for s in status.instances if str(s.service) == "in service"}
    assert serving == {f"{b}-{deployment}" for b in fleet.blue}
    assert (await http_get(fleet.lb_port))[0] == 200


@pytest.mark.parametrize("kind", ["builtin", "haproxy"])
async def test_a_new_configuration_adds_and_drops_instances_on_the_running_listener(
    fleet: Any, short_dir: Path, kind: str
) -> None:
    if kind == "haproxy":
        require_tool("haproxy")
    i1, i2, i3 = await fleet(3, version="{name}")
    place = HostPlace(short_dir / "balancer")
    port = free_port()

    def hosted(*backends: Any) -> HostedBalancer:
        targets = [b.target for b in backends]
        return HostedBalancer(place, "app/fleet", kind, ("127.0.0.1", port), targets, FAST)

    first = hosted(i1, i2)
    await first.start()
    host = place.pid()
    await settle(lambda: serving(first, {"i1", "i2"}))
    assert set(await versions(port)) == {"i1", "i2"}

    second = hosted(i2, i3)
    await second.start()  # i1 leaves (drained, then dropped), i3 joins
    assert (await second.allow("i3")).seconds >= 0
    await settle(lambda: listed(second, {"i2", "i3"}))
    assert set(await versions(port)) == {"i2", "i3"}
    assert place.pid() == host
    assert await stop_host(place)
    assert await refused(port)


async def serving(balancer: HostedBalancer, names: set[str]) -> bool:
    return {n for n, s in (await balancer.states()).items() if s.serving} == names


async def listed(balancer: HostedBalancer, names: set[str]) -> bool:
    return set(await balancer.states()) == names
