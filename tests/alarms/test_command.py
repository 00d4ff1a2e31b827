"""The command alarm: real processes, their exit status, their timeout ending the whole
process group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.alarms import AlarmState, CommandAlarmSpec, make_alarm
from engine.clock import ManualClock, RealClock
from tests.alarms.conftest import process_gone, settle


async def test_exit_zero_is_ok_and_any_other_exit_is_alarm_with_its_output(
    tmp_path: Path,
) -> None:
    ok = await make_alarm(CommandAlarmSpec("smoke", "echo all good"), RealClock()).evaluate()
    assert (ok.state, ok.value, ok.threshold) == (AlarmState.OK, 0.0, None)
    assert ok.message == "exit 0: all good"

    failing = await make_alarm(
        CommandAlarmSpec("smoke", "echo 'queue too deep: 512' >&2; exit 3"), RealClock()
    ).evaluate()
    assert (failing.state, failing.value) == (AlarmState.ALARM, 3.0)
    assert failing.message == "exit code 3: queue too deep: 512"


async def test_a_list_runs_without_a_shell_in_its_folder_with_its_name_in_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / "check.sh").write_text('#!/bin/sh\necho "$DEPLOYDECK_ALARM in $(pwd)"\nexit 1\n')
    (tmp_path / "check.sh").chmod(0o755)
    spec = CommandAlarmSpec("disk", ("./check.sh",), cwd=str(tmp_path))
    reading = await make_alarm(spec, RealClock()).evaluate()
    assert reading.state is AlarmState.ALARM
    assert reading.message == f"exit code 1: disk in {tmp_path}"


async def test_timeout_ends_the_whole_process_group_and_reads_error(tmp_path: Path) -> None:
    """A command alarm that hangs (with a child of its own) -> after its timeout its whole
    process group is ended and the reading is ERROR."""
    pidfile = tmp_path / "child.pid"
    clock = ManualClock()
    spec = CommandAlarmSpec("hangs", f"sleep 300 & echo $! > {pidfile}; wait", timeout_seconds=20)
    evaluation = asyncio.create_task(make_alarm(spec, clock).evaluate())
    await settle(lambda: pidfile.exists() and pidfile.read_text().strip())
    child = int(pidfile.read_text())
    assert not process_gone(child)
    await settle(lambda: clock.sleeping == 1)  # the timeout is counting
    await clock.advance(20)
    reading = await evaluation
    assert reading.state is AlarmState.ERROR
    assert "did not finish within 20 s" in reading.message
    assert "process group was terminated" in reading.message
    assert process_gone(child)


async def test_a_command_that_cannot_start_reads_error(tmp_path: Path) -> None:
    spec = CommandAlarmSpec("missing", (str(tmp_path / "no-such-check"),))
    reading = await make_alarm(spec, RealClock()).evaluate()
    assert reading.state is AlarmState.ERROR
    assert "cannot start" in reading.message and "no-such-check" in reading.message


async def test_a_cancelled_evaluation_ends_its_process_group(tmp_path: Path) -> None:
    """An evaluation cancelled (the deployment stopped) -> the command's whole process group is
    ended, even when the cancel lands while the process is still being set up."""
    for attempt in range(25):  # the cancel lands at varying points of the start
        pidfile = tmp_path / f"child{attempt}.pid"
        spec = CommandAlarmSpec("hangs", f"sleep 300 & echo $! > {pidfile}; wait")
        evaluation = asyncio.create_task(make_alarm(spec, RealClock()).evaluate())
        await settle(lambda: pidfile.exists() and pidfile.read_text().strip())  # noqa: B023
        child = int(pidfile.read_text())
        evaluation.cancel()
        try:
            await evaluation
        except asyncio.CancelledError:
            pass
        assert process_gone(child), f"attempt {attempt}"


async def test_a_command_killed_by_a_signal_is_alarm_saying_so() -> None:
    reading = await make_alarm(CommandAlarmSpec("self-kill", "kill -9 $$"), RealClock()).evaluate()
    assert reading.state is AlarmState.ALARM
    assert reading.message == "ended by signal 9"
