"""A deployment's alarms, wired to its journal and its run.

The runner makes one `DeploymentAlarms` per deployment whose group has alarms (none for an
automatic rollback: it restores the last good revision while the alarm that caused it may
still fire). It evaluates the alarms in the background at the configured interval while the
run goes on, and the run asks `check()` before each batch. Every reading is journaled as an
AlarmEvaluated before anything acts on it; a tripped alarm becomes a StopRequest with
ALARM_ACTIVE (a rollback after it when the deployment's auto rollback has
DEPLOYMENT_STOP_ON_ALARM), which the run handles like any stop: running hooks are ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from engine import events as ev
from engine.alarms import (
    AlarmConfiguration,
    AlarmMonitor,
    AlarmOverride,
    AlarmReading,
    alarm_stop,
)
from engine.clock import Clock
from engine.deployments.run import DeploymentRun, StopRequest
from engine.model import CREATOR_ROLLBACK, DeploymentInfo
from engine.store import Store

# How long one journal write waits for another process's lock before the loop gets a turn.
LOCKED_TRY_SECONDS = 0.2
LOCKED_PAUSE_SECONDS = 0.1


def override_of(deployment: DeploymentInfo) -> AlarmOverride | None:
    """The deployment's override of its group's alarm configuration, if it has one."""
    options = deployment.options
    if not options.overrides_alarms:
        return None
    return AlarmOverride(
        enabled=options.alarms_enabled,
        ignore_poll_alarm_failure=options.ignore_poll_alarm_failure,
    )


def stop_message(reading: AlarmReading, message: str) -> str:
    """The stop's message, naming the alarm's measured value and its threshold."""
    if reading.value is None:
        return message
    measured = f"value {reading.value:g}"
    if reading.threshold is not None:
        measured += f", threshold {reading.threshold:g}"
    return f"{message} ({measured})"


class DeploymentAlarms:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        deployment: DeploymentInfo,
        configuration: AlarmConfiguration,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.store = store
        self.deployment = deployment
        self.redact = redact
        self.monitor = AlarmMonitor(
            configuration, clock, self._journal, override=override_of(deployment)
        )
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    def for_deployment(
        cls,
        store: Store,
        clock: Clock,
        deployment: DeploymentInfo,
        configuration: AlarmConfiguration | None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> DeploymentAlarms | None:
        """The deployment's alarms, or None when none are to be evaluated."""
        if configuration is None or deployment.creator == CREATOR_ROLLBACK:
            return None
        alarms = cls(store, clock, deployment, configuration, redact)
        return alarms if alarms.monitor.enabled else None

    async def _journal(self, reading: AlarmReading) -> None:
        event = ev.AlarmEvaluated(
            self.deployment.id,
            reading.observed_at,
            reading.name,
            reading.state.value,
            reading.value,
            reading.threshold,
            self.redact(reading.message),
            reading.observe_only,
        )
        # Another process may hold the database: wait it out without holding up the loop.
        while not self.store.try_append_many([event], LOCKED_TRY_SECONDS):
            await asyncio.sleep(LOCKED_PAUSE_SECONDS)

    def stop_request(self) -> StopRequest | None:
        """The stop a tripped alarm calls for, or None while none has tripped."""
        reading = self.monitor.tripped()
        if reading is None:
            return None
        stop = alarm_stop(reading, self.deployment.options.auto_rollback)
        return StopRequest(
            stop.roll_back, stop.error_code, self.redact(stop_message(reading, stop.message))
        )

    async def check(self) -> StopRequest | None:
        """Evaluate every alarm now (before a batch); the stop it calls for, if any."""
        await self.monitor.check_now()
        return self.stop_request()

    def start(self, run: DeploymentRun) -> None:
        """Evaluate in the background until `close()`; a trip stops `run`."""
        self.monitor.start()
        self._watch = asyncio.create_task(self._stop_on_trip(run), name="alarm-stop")

    async def _stop_on_trip(self, run: DeploymentRun) -> None:
        await self.monitor.wait_tripped()
        request = self.stop_request()
        if request is not None:
            run.request_stop(request)

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await self.monitor.close()
