"""Evaluating a deployment group's alarms while a deployment runs, and deciding when they stop
it.

The deployment calls `check_now()` before each batch or traffic step and runs the monitor in
the background (`start()`/`close()`, or `async with`), which evaluates every `interval_seconds`
on the injected clock. Each evaluation runs all alarms concurrently, each bounded by its own
timeout (an http alarm's once per probe) plus a grace period; every reading goes to
`on_reading` (to journal and show it) in the configuration's order.

When alarms stop a deployment (`tripped()`), as CodeDeploy decides:
- alarms are not evaluated at all when the configuration is disabled (`enabled: false`) or a
  per-deployment override disables them;
- a reading in ALARM trips; an ERROR (the alarm could not be evaluated) trips unless
  `ignore_poll_alarm_failure` is set; OK and INSUFFICIENT_DATA never trip;
- an observe-only alarm is evaluated and reported but never trips.
The first trip is kept: `tripped()` keeps returning it even if a later reading is OK, since
the deployment stops on the first (with ALARM_ACTIVE, rolling back if the group's auto
rollback has DEPLOYMENT_STOP_ON_ALARM).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence

from engine.alarms.model import (
    Alarm,
    AlarmConfiguration,
    AlarmOverride,
    AlarmReading,
    AlarmSpec,
    AlarmState,
    CommandAlarmSpec,
    HttpAlarmSpec,
)
from engine.clock import Clock
from engine.traffic.waits import within

# How long past an alarm's own timeout the monitor waits before calling it unanswered.
EVALUATION_GRACE_SECONDS = 5.0

ReadingCallback = Callable[[AlarmReading], Awaitable[None] | None]


def make_alarm(spec: AlarmSpec, clock: Clock) -> Alarm:
    """The alarm a spec describes, ready to evaluate (each kind's module imported when a group
    uses it: most deployments have no alarm)."""
    if isinstance(spec, HttpAlarmSpec):
        from engine.alarms.http import HttpAlarm

        return HttpAlarm(spec, clock)
    if isinstance(spec, CommandAlarmSpec):
        from engine.alarms.command import CommandAlarm

        return CommandAlarm(spec, clock)
    from engine.alarms.prometheus import PrometheusAlarm

    return PrometheusAlarm(spec, clock)


class AlarmMonitor:
    def __init__(
        self,
        configuration: AlarmConfiguration,
        clock: Clock,
        on_reading: ReadingCallback | None = None,
        *,
        override: AlarmOverride | None = None,
        alarms: Sequence[Alarm] | None = None,
    ) -> None:
        """`override` is this deployment's (ValueError if it names an unknown alarm).
        `alarms` replaces the ones built from the specs, for callers that keep alarm objects
        (and an http alarm's window) across deployments: those whose spec the effective
        configuration names are evaluated, in its order."""
        self.configuration = override.apply(configuration) if override else configuration
        self.clock = clock
        self.on_reading = on_reading
        names = self.configuration.names
        if alarms is None:
            chosen = [make_alarm(spec, clock) for spec in self.configuration.alarms]
        else:
            by_name = {alarm.spec.name: alarm for alarm in alarms}
            chosen = [by_name[name] for name in names if name in by_name]
        self.alarms: tuple[Alarm, ...] = tuple(chosen) if self.enabled else ()
        self.latest: dict[str, AlarmReading] = {}
        self._tripped: AlarmReading | None = None
        self._trip_event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.configuration.enabled and bool(self.configuration.alarms)

    async def check_now(self) -> tuple[AlarmReading, ...]:
        """Evaluate every alarm now (after any evaluation under way), report each reading and
        return them in the configuration's order. Nothing when alarms are disabled."""
        async with self._lock:
            if not self.alarms:
                return ()
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._evaluate(alarm)) for alarm in self.alarms]
            readings = tuple(task.result() for task in tasks)
            # Reported (journaled) before a trip is acted on.
            for reading in readings:
                self.latest[reading.name] = reading
                if self.on_reading is not None:
                    result = self.on_reading(reading)
                    if inspect.isawaitable(result):
                        await result
            for reading in readings:
                if self._tripped is None and self._trips(reading):
                    self._tripped = reading
                    self._trip_event.set()
            return readings

    def tripped(self) -> AlarmReading | None:
        """The reading that stops the deployment, or None while nothing has tripped."""
        return self._tripped

    async def wait_tripped(self) -> AlarmReading:
        """Wait until an alarm trips (to race a batch against); returns its reading."""
        await self._trip_event.wait()
        assert self._tripped is not None
        return self._tripped

    def start(self) -> None:
        """Evaluate every `interval_seconds` in the background until `close()`."""
        if self._loop is None and self.alarms:
            self._loop = asyncio.create_task(self._poll(), name="alarm-monitor")

    async def close(self) -> None:
        """Stop the background evaluation (a command alarm under way has its group ended). A
        failure of `on_reading` in the background is raised here."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.cancel()
        await asyncio.wait({loop})
        if not loop.cancelled() and loop.exception() is not None:
            raise loop.exception()  # type: ignore[misc]

    async def __aenter__(self) -> AlarmMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _trips(self, reading: AlarmReading) -> bool:
        if reading.observe_only:
            return False
        if reading.state is AlarmState.ALARM:
            return True
        return (
            reading.state is AlarmState.ERROR and not self.configuration.ignore_poll_alarm_failure
        )

    async def _poll(self) -> None:
        while True:
            await self.clock.sleep(self.configuration.interval_seconds)
            await self.check_now()

    async def _evaluate(self, alarm: Alarm) -> AlarmReading:
        """The alarm's reading; ERROR when it does not answer in time or fails unexpectedly."""
        spec = alarm.spec
        # An http alarm's probes run one after the other, each within the timeout.
        rounds = spec.probes if isinstance(spec, HttpAlarmSpec) else 1
        bound = spec.timeout_seconds * rounds + EVALUATION_GRACE_SECONDS
        try:
            return await within(self.clock, bound, alarm.evaluate(), settle_on_cancel=True)
        except TimeoutError:
            message = f"no reading within {bound:g} s"
        except Exception as error:  # an alarm's own bug must not end the deployment's checks
            message = f"the evaluation failed: {type(error).__name__}: {error}"
        return AlarmReading.of(spec, AlarmState.ERROR, None, message, self.clock.now())
