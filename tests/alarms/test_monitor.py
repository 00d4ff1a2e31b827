"""The alarm monitor: concurrent evaluation, reporting, and CodeDeploy's rules for when alarms
stop a deployment (enabled, ignore_poll_alarm_failure, the per-deployment override) plus
observe-only. The alarms are real commands switched by a flag file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.alarms import (
    DEPLOYMENT_STOP_ON_ALARM,
    AlarmConfiguration,
    AlarmMonitor,
    AlarmOverride,
    AlarmReading,
    AlarmState,
    CommandAlarmSpec,
    alarm_stop,
)
from engine.alarms.model import AlarmSpec
from engine.clock import ManualClock, RealClock
from engine.model import AutoRollback
from tests.alarms.conftest import settle


def flag_alarm(folder: Path, name: str, **more) -> CommandAlarmSpec:
    """An alarm that fires while the file `<name>.firing` exists in `folder`."""
    return CommandAlarmSpec(name, f"test ! -e {folder / name}.firing", **more)


def fire(folder: Path, name: str, on: bool = True) -> None:
    flag = folder / f"{name}.firing"
    if on:
        flag.touch()
    else:
        flag.unlink()


async def test_check_now_evaluates_every_alarm_and_reports_in_order(tmp_path: Path) -> None:
    config = AlarmConfiguration(
        alarms=(flag_alarm(tmp_path, "a"), flag_alarm(tmp_path, "b"), flag_alarm(tmp_path, "c"))
    )
    seen: list[AlarmReading] = []

    async def journal(reading: AlarmReading) -> None:
        await asyncio.sleep(0)
        seen.append(reading)

    fire(tmp_path, "b")
    monitor = AlarmMonitor(config, RealClock(), journal)
    readings = await monitor.check_now()
    assert [(r.name, r.state) for r in readings] == [
        ("a", AlarmState.OK),
        ("b", AlarmState.ALARM),
        ("c", AlarmState.OK),
    ]
    assert seen == list(readings)
    assert monitor.latest["b"] is readings[1]
    assert monitor.tripped() is readings[1]


async def test_alarms_are_evaluated_concurrently(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    # Each waits until all three have started: only a concurrent evaluation finishes.
    wait_all = f"touch {started}/$DEPLOYDECK_ALARM; while [ $(ls {started} | wc -l) -lt 3 ]; do sleep 0.01; done"
    specs = tuple(CommandAlarmSpec(n, wait_all, timeout_seconds=30) for n in "xyz")
    readings = await AlarmMonitor(AlarmConfiguration(alarms=specs), RealClock()).check_now()
    assert [r.state for r in readings] == [AlarmState.OK] * 3


async def test_observe_only_alarm_is_reported_but_never_trips(tmp_path: Path) -> None:
    config = AlarmConfiguration(alarms=(flag_alarm(tmp_path, "trial", observe_only=True),))
    fire(tmp_path, "trial")
    seen: list[AlarmReading] = []
    monitor = AlarmMonitor(config, RealClock(), seen.append)
    (reading,) = await monitor.check_now()
    assert reading.state is AlarmState.ALARM and reading.observe_only
    assert seen == [reading]
    assert monitor.tripped() is None


async def test_an_alarm_that_cannot_be_evaluated_trips_unless_poll_failures_are_ignored(
    tmp_path: Path,
) -> None:
    broken = CommandAlarmSpec("broken", (str(tmp_path / "missing-check"),))
    strict = AlarmMonitor(AlarmConfiguration(alarms=(broken,)), RealClock())
    (reading,) = await strict.check_now()
    assert reading.state is AlarmState.ERROR
    assert strict.tripped() == reading

    lenient = AlarmMonitor(
        AlarmConfiguration(
            alarms=(broken, flag_alarm(tmp_path, "real")), ignore_poll_alarm_failure=True
        ),
        RealClock(),
    )
    await lenient.check_now()
    assert lenient.tripped() is None
    fire(tmp_path, "real")  # a real ALARM still trips when poll failures are ignored
    await lenient.check_now()
    tripped = lenient.tripped()
    assert tripped is not None and (tripped.name, tripped.state) == ("real", AlarmState.ALARM)


async def test_disabled_configuration_evaluates_nothing_and_never_trips(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    spec = CommandAlarmSpec("would-fire", f"touch {ran}; exit 1")
    monitor = AlarmMonitor(AlarmConfiguration(alarms=(spec,), enabled=False), RealClock())
    assert await monitor.check_now() == ()
    monitor.start()
    await monitor.close()
    assert not ran.exists()
    assert monitor.tripped() is None


async def test_override_ignores_the_alarms_for_one_deployment(tmp_path: Path) -> None:
    """An alarm still firing from a failed deployment, overridden for a redeploy -> the
    redeploy is not stopped (and the alarm's command does not run)."""
    ran = tmp_path / "ran"
    group = AlarmConfiguration(alarms=(CommandAlarmSpec("still-firing", f"touch {ran}; exit 1"),))
    monitor = AlarmMonitor(group, RealClock(), override=AlarmOverride(enabled=False))
    assert await monitor.check_now() == ()
    assert monitor.tripped() is None and not ran.exists()

    ordinary = AlarmMonitor(group, RealClock())
    await ordinary.check_now()
    assert ordinary.tripped() is not None and ran.exists()


async def test_override_can_keep_some_alarms_and_change_the_failure_rule(tmp_path: Path) -> None:
    broken = CommandAlarmSpec("broken", (str(tmp_path / "missing-check"),))
    group = AlarmConfiguration(alarms=(broken, flag_alarm(tmp_path, "firing")), enabled=False)
    fire(tmp_path, "firing")
    only_broken = AlarmMonitor(
        group, RealClock(), override=AlarmOverride(enabled=True, alarms=("broken",))
    )
    readings = await only_broken.check_now()
    assert [r.name for r in readings] == ["broken"]
    assert only_broken.tripped() is not None

    lenient = AlarmMonitor(
        group,
        RealClock(),
        override=AlarmOverride(enabled=True, alarms=("broken",), ignore_poll_alarm_failure=True),
    )
    await lenient.check_now()
    assert lenient.tripped() is None

    with pytest.raises(
        ValueError,
        match=r"names nope, which the group does not have \(its alarms: broken, firing\)",
    ):
        AlarmMonitor(group, RealClock(), override=AlarmOverride(alarms=("nope",)))


async def test_the_monitor_polls_on_the_clock_and_the_first_trip_is_kept(tmp_path: Path) -> None:
    clock = ManualClock()
    config = AlarmConfiguration(alarms=(flag_alarm(tmp_path, "errors"),), interval_seconds=30)
    seen: list[AlarmReading] = []
    monitor = AlarmMonitor(config, clock, seen.append)
    async with monitor:
        await settle(lambda: clock.sleeping == 1)
        assert seen == []  # nothing before the first interval
        await clock.advance(30)
        await settle(lambda: len(seen) == 1)
        assert seen[0].state is AlarmState.OK and monitor.tripped() is None

        fire(tmp_path, "errors")
        waiter = asyncio.create_task(monitor.wait_tripped())
        await settle(lambda: clock.sleeping >= 1)
        await clock.advance(30)
        tripped = await waiter
        assert (tripped.name, tripped.state) == ("errors", AlarmState.ALARM)
        assert seen[-1] is tripped  # reported before anyone acts on it

        fire(tmp_path, "errors", on=False)
        (later,) = await monitor.check_now()
        assert later.state is AlarmState.OK
        assert monitor.tripped() is tripped


async def test_an_alarm_that_never_answers_is_cut_off_and_reads_error() -> None:
    class Stuck:
        spec: AlarmSpec = CommandAlarmSpec("stuck", "true", timeout_seconds=1)

        async def evaluate(self) -> AlarmReading:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    clock = ManualClock()
    config = AlarmConfiguration(alarms=(Stuck.spec,))
    monitor = AlarmMonitor(config, clock, alarms=[Stuck()])
    check = asyncio.create_task(monitor.check_now())
    await settle(lambda: clock.sleeping == 1)
    await clock.advance(6)
    (reading,) = await check
    assert reading.state is AlarmState.ERROR
    assert reading.message == "no reading within 6 s"
    assert monitor.tripped() is reading


async def test_an_alarm_that_raises_reads_error_and_the_others_still_report(tmp_path: Path) -> None:
    class Broken:
        spec: AlarmSpec = CommandAlarmSpec("broken", "true")

        async def evaluate(self) -> AlarmReading:
            raise RuntimeError("bug in the alarm")

    good = flag_alarm(tmp_path, "good")
    from engine.alarms import make_alarm

    config = AlarmConfiguration(alarms=(Broken.spec, good))
    monitor = AlarmMonitor(config, RealClock(), alarms=[Broken(), make_alarm(good, RealClock())])
    broken, fine = await monitor.check_now()
    assert broken.state is AlarmState.ERROR
    assert broken.message == "the evaluation failed: RuntimeError: bug in the alarm"
    assert fine.state is AlarmState.OK


async def test_close_ends_a_command_alarm_under_way(tmp_path: Path) -> None:
    from tests.alarms.conftest import process_gone

    pidfile = tmp_path / "child.pid"
    spec = CommandAlarmSpec("slow", f"sleep 300 & echo $! > {pidfile}; wait", timeout_seconds=600)
    clock = ManualClock()
    monitor = AlarmMonitor(AlarmConfiguration(alarms=(spec,), interval_seconds=1), clock)
    monitor.start()
    await settle(lambda: clock.sleeping == 1)
    await clock.advance(1)
    await settle(lambda: pidfile.exists() and pidfile.read_text().strip())
    await monitor.close()
    assert process_gone(int(pidfile.read_text()))


async def test_a_failing_report_in_the_background_is_raised_by_close(tmp_path: Path) -> None:
    def journal(reading: AlarmReading) -> None:
        raise OSError("journal is full")

    clock = ManualClock()
    monitor = AlarmMonitor(
        AlarmConfiguration(alarms=(flag_alarm(tmp_path, "a"),), interval_seconds=1), clock, journal
    )
    monitor.start()
    await settle(lambda: clock.sleeping == 1)
    await clock.advance(1)
    await settle(lambda: monitor._loop is not None and monitor._loop.done())
    with pytest.raises(OSError, match="journal is full"):
        await monitor.close()


async def test_a_trip_stops_with_alarm_active_and_rolls_back_only_on_stop_on_alarm(
    tmp_path: Path,
) -> None:
    fire(tmp_path, "errors")
    firing = AlarmMonitor(AlarmConfiguration(alarms=(flag_alarm(tmp_path, "errors"),)), RealClock())
    await firing.check_now()
    reading = firing.tripped()
    assert reading is not None
    stop = alarm_stop(reading, AutoRollback(True, (DEPLOYMENT_STOP_ON_ALARM,)))
    assert (stop.error_code, stop.roll_back) == ("ALARM_ACTIVE", True)
    assert stop.message == "alarm errors is in ALARM: exit code 1"
    assert not alarm_stop(reading, AutoRollback(True, ("DEPLOYMENT_FAILURE",))).roll_back
    assert not alarm_stop(reading, AutoRollback(False, (DEPLOYMENT_STOP_ON_ALARM,))).roll_back
    assert not alarm_stop(reading, None).roll_back

    broken = AlarmMonitor(
        AlarmConfiguration(alarms=(CommandAlarmSpec("broken", (str(tmp_path / "nope"),)),)),
        RealClock(),
    )
    await broken.check_now()
    error = broken.tripped()
    assert error is not None
    message = alarm_stop(error, None).message
    assert message.startswith("alarm broken could not be evaluated: the command cannot start")
    assert "ignore_poll_alarm_failure: true" in message


async def test_the_first_trip_is_the_one_reported_even_when_another_alarm_fires_later(
    tmp_path: Path,
) -> None:
    config = AlarmConfiguration(alarms=(flag_alarm(tmp_path, "a"), flag_alarm(tmp_path, "b")))
    monitor = AlarmMonitor(config, RealClock())
    fire(tmp_path, "a")
    await monitor.check_now()
    first = monitor.tripped()
    fire(tmp_path, "a", on=False)
    fire(tmp_path, "b")
    await monitor.check_now()
    assert monitor.latest["b"].state is AlarmState.ALARM
    assert monitor.tripped() is first and first is not None and first.name == "a"


async def test_alarm_objects_kept_across_deployments_follow_the_override(tmp_path: Path) -> None:
    from engine.alarms import make_alarm

    specs = (flag_alarm(tmp_path, "a"), flag_alarm(tmp_path, "b"))
    kept = [make_alarm(spec, RealClock()) for spec in specs]
    monitor = AlarmMonitor(
        AlarmConfiguration(alarms=specs),
        RealClock(),
        override=AlarmOverride(alarms=("b", "a", "b")),
        alarms=kept,
    )
    readings = await monitor.check_now()
    assert [r.name for r in readings] == ["b", "a"]
