"""The command balancer: the user's shell commands drive a real HAProxy (as they would nginx or
a cloud LB's CLI), and commands that fail or hang give clear errors."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest

from engine.traffic.command import BalancerCommands, CommandBalancer
from engine.traffic.model import Health, Service, Target, TrafficError
from tests.conftest import require_tool
from tests.traffic.conftest import FAST, SLOWISH
from tests.traffic.loadgen import run_load

HACTL = Path(__file__).with_name("hactl.py")
HEALTH = "curl -fsS -o /dev/null http://$DEPLOYDECK_INSTANCE_HOST:$DEPLOYDECK_INSTANCE_PORT/healthz"


def haproxy_commands(socket: Path) -> BalancerCommands:
    server = 'S=shop/$(case "$DEPLOYDECK_INSTANCE" in i1) echo web-a;; i2) echo web-b;; esac); '
    ctl = f"{sys.executable} {HACTL} {socket}"
    return BalancerCommands(
        block=server + f'{ctl} "set server $S state drain"',
        allow=server + f'{ctl} "set server $S state ready"',
        health=HEALTH,
        drained=server + f"{ctl} --idle $S",
        timeout_seconds=10,
    )


async def test_commands_drive_a_rolling_update_with_no_failed_request(running_haproxy):
    require_tool("curl")
    _, socket, port, backends = running_haproxy
    lb = CommandBalancer([b.target for b in backends], haproxy_commands(socket), FAST)
    async with lb:
        load = asyncio.create_task(run_load("127.0.0.1", port, 800, concurrency=4, path=SLOWISH))
        await asyncio.sleep(0.2)
        for backend in backends:
            blocked = await lb.block(backend.name)
            assert blocked.drained
            assert (await lb.states())[backend.name].service is Service.OUT_OF_SERVICE
            await backend.restart(f"{backend.name}-v2")
            await lb.allow(backend.name)
        assert not load.done(), "the load ended before the update: make it longer"
        report = await load
        states = await lb.states()
    assert report.failures == []
    assert report.versions[0] in ("i1", "i2") and report.versions[-1].endswith("-v2")
    assert all(s.serving and s.detail == "exit 0" for s in states.values())


def one_target(tmp_path: Path) -> list[Target]:
    return [Target("web-1", "127.0.0.1", 8081)]


async def test_commands_get_the_instance_in_their_environment(tmp_path):
    seen = tmp_path / "seen"
    record = f'echo "$DEPLOYDECK_LB_ACTION $DEPLOYDECK_INSTANCE $DEPLOYDECK_INSTANCE_HOST $DEPLOYDECK_INSTANCE_PORT" >> {seen}'
    commands = BalancerCommands(block=record, allow=record, health=record)
    lb = CommandBalancer(one_target(tmp_path), commands, FAST)
    await lb.block("web-1")
    result = await lb.allow("web-1")
    lines = seen.read_text().splitlines()
    assert lines[0] == "block web-1 127.0.0.1 8081"
    assert lines[1] == "allow web-1 127.0.0.1 8081"
    # healthy after exactly `healthy_threshold` passing health commands
    assert lines[2:] == ["health web-1 127.0.0.1 8081"] * FAST.health_check.healthy_threshold
    assert result.seconds >= FAST.health_check.interval_seconds


async def test_a_failing_block_command_is_a_clear_error(tmp_path):
    commands = BalancerCommands(
        block="echo 'target web-1 not registered' >&2; exit 3", allow="true", health="true"
    )
    lb = CommandBalancer(one_target(tmp_path), commands, FAST)
    with pytest.raises(TrafficError) as caught:
        await lb.block("web-1")
    assert str(caught.value) == (
        "the block command for instance web-1 failed: exit code 3: target web-1 not registered"
    )


async def test_a_hanging_command_is_ended_with_its_whole_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    commands = BalancerCommands(
        block=f"sleep 30 >/dev/null 2>&1 & echo $! > {pidfile}; sleep 30 >/dev/null 2>&1",
        allow="true",
        health="true",
        timeout_seconds=0.5,
    )
    lb = CommandBalancer(one_target(tmp_path), commands, FAST)
    with pytest.raises(TrafficError, match=r"block command .* did not finish within 0.5 s"):
        await lb.block("web-1")
    background = int(pidfile.read_text())
    assert not running(background)  # the command's background child was ended too


def running(pid: int) -> bool:
    """A live process, not a zombie waiting for a parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_allow_fails_after_its_timeout_when_health_never_passes(tmp_path):
    commands = BalancerCommands(
        block="true", allow="true", health="echo 'upstream answered 503'; exit 1"
    )
    settings = dataclasses.replace(FAST, allow_timeout_seconds=0.5)
    lb = CommandBalancer(one_target(tmp_path), commands, settings)
    await lb.block("web-1")
    with pytest.raises(TrafficError) as caught:
        await lb.allow("web-1")
    message = str(caught.value)
    assert "web-1 did not become healthy within 0.5 s" in message
    assert "last: exit code 1: upstream answered 503" in message
    state = (await lb.states())["web-1"]
    assert state.health is Health.UNHEALTHY and state.service is Service.IN_SERVICE


async def test_block_gives_up_on_draining_after_the_deregistration_delay(tmp_path):
    commands = BalancerCommands(block="true", allow="true", health="true", drained="exit 1")
    settings = dataclasses.replace(FAST, deregistration_delay_seconds=0.3)
    lb = CommandBalancer(one_target(tmp_path), commands, settings)
    result = await lb.block("web-1")
    assert not result.drained and result.seconds >= 0.3
    assert (await lb.states())["web-1"].service is Service.OUT_OF_SERVICE
