"""Faults around a deployment's alarms: an alarm that hangs, a Prometheus that is not there,
an alarm that fires while a hook runs. Each test names the fault and what deploydeck promises."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.alarms.test_deployments import alarm_events, deploy, workspace
from tests.cli.test_local_cli import free_port
from tests.engine.fleet import live_pids, make_revision
from tests.host.harness import pid_alive


async def test_an_alarm_command_that_hangs(tmp_path: Path) -> None:
    """An alarm command that never finishes -> its whole process group is ended at its timeout,
    and the deployment stops with ALARM_ACTIVE saying the alarm could not be evaluated."""
    pid_file = tmp_path / "alarm-child.pid"
    alarm = {
        "name": "stuck",
        "type": "command",
        "command": f"sleep 600 & echo $! > '{pid_file}'; wait",
        "timeout_seconds": 0.5,
    }
    engine = workspace(tmp_path, [alarm], count=2)
    try:
        stopped = await deploy(engine, make_revision(tmp_path, "v1"))
        assert stopped.status == "Stopped" and stopped.error_code == "ALARM_ACTIVE"
        assert "alarm stuck could not be evaluated" in (stopped.error_message or "")
        assert "ignore_poll_alarm_failure" in (stopped.error_message or "")
        assert not pid_alive(int(pid_file.read_text()))
    finally:
        await engine.aclose()


async def test_a_prometheus_that_is_not_there(tmp_path: Path) -> None:
    """A Prometheus alarm whose server does not answer -> the deployment stops with
    ALARM_ACTIVE, unless ignore_poll_alarm_failure lets it go on (the ERROR still journaled)."""
    alarm = {
        "name": "gone",
        "type": "prometheus",
        "url": f"http://127.0.0.1:{free_port()}",
        "query": "up",
        "threshold": 1,
        "timeout_seconds": 1,
    }
    for folder in ("strict", "lenient"):
        (tmp_path / folder).mkdir()
    strict = workspace(tmp_path / "strict", [alarm], count=2)
    lenient = workspace(tmp_path / "lenient", [alarm], count=2, ignore_poll_alarm_failure=True)
    try:
        stopped = await deploy(strict, make_revision(tmp_path, "v1"))
        assert stopped.status == "Stopped" and stopped.error_code == "ALARM_ACTIVE"
        assert "gone" in (stopped.error_message or "")
        done = await deploy(lenient, make_revision(tmp_path, "v1"))
        assert done.status == "Succeeded"
        assert {r.state for r in alarm_events(lenient, done.id)} == {"ERROR"}
    finally:
        await strict.aclose()
        await lenient.aclose()


async def test_an_alarm_that_fires_while_a_hook_runs(tmp_path: Path) -> None:
    """An alarm firing while a hook hangs -> the hook's process group is ended as for a stop,
    the instance is Failed and the deployment Stopped with ALARM_ACTIVE."""
    flag = tmp_path / "firing"
    engine = workspace(
        tmp_path,
        [{"name": "errors", "type": "command", "command": f"test ! -e '{flag}'"}],
        count=2,
        env={"i01": {"HANG_ON": "BeforeInstall"}},
    )
    try:
        task = asyncio.ensure_future(deploy(engine, make_revision(tmp_path, "v1")))
        while not live_pids(tmp_path / "pids.txt"):
            await asyncio.sleep(0.05)
        hung = live_pids(tmp_path / "pids.txt")
        flag.touch()
        stopped = await task
        assert stopped.status == "Stopped" and stopped.error_code == "ALARM_ACTIVE"
        assert {i.name: i.status for i in stopped.instances} == {"i01": "Failed", "i02": "Skipped"}
        assert not any(pid_alive(p) for p in hung)
    finally:
        await engine.aclose()
