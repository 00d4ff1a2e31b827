"""The traffic gauge of a Lambda deployment: while its run lives, the weight set on the target
version (the last TrafficShifted), the actual share of the alias's recent calls the gateways
sent there (engine.functions.meter), and where the schedule stands, journaled as
TrafficMeasured whenever a figure changes (and every HEARTBEAT_SECONDS while calls flow), so
the console and `get-deployment` show set against actual weight from the journal alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import events as ev
from engine.configs.traffic import TrafficStep
from engine.functions.meter import measured
from engine.store import Store

SAMPLE_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0


class TrafficGauge:
    """Samples a run's alias; use as `async with TrafficGauge(...):` around the run's events."""

    def __init__(
        self,
        deployment_id: str,
        store: Store,
        now: Callable[[], float],
        functions_root: Path,
        function: str,
        alias: str,
        target_version: str,
        schedule: Sequence[TrafficStep],
    ) -> None:
        self.deployment_id = deployment_id
        self.store = store
        self.now = now
        self.functions_root = functions_root
        self.function, self.alias, self.target = function, alias, target_version
        self.schedule = list(schedule)
        self._last: tuple[object, ...] | None = None
        self._last_wall = 0.0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> ev.TrafficMeasured | None:
        """The gauge now, journaled if it changed; None before the first shift."""
        shifts = [
            e.event
            for e in self.store.journal_of_kind(self.deployment_id, ev.TrafficShifted.kind)
            if isinstance(e.event, ev.TrafficShifted)
        ]
        if not shifts:
            return None
        done, steps, next_at = self._progress(shifts)
        last = shifts[-1]
        weights = {last.original_version: 1.0 - last.weight, last.target_version: last.weight}
        calls = measured(self.functions_root, self.function, self.alias, weights)
        actual = calls.share(self.target)
        gauge = ev.TrafficMeasured(
            self.deployment_id,
            self.now(),
            self.function,
            self.alias,
            self.target,
            shifts[-1].weight,
            None if actual is None else round(actual, 4),
            calls.calls,
            done,
            steps,
            next_at,
        )
        key = (gauge.set_weight, _percent(actual), gauge.step, gauge.next_shift_at)
        # the wall clock paces the journal: it rates real calls, whatever the run's time scale
        wall = time.monotonic()
        beat = calls.calls > 0 and wall - self._last_wall >= HEARTBEAT_SECONDS
        if key != self._last or beat:
            self._last, self._last_wall = key, wall
            self.store.append(gauge)
        return gauge

    def _progress(self, shifts: list[ev.TrafficShifted]) -> tuple[int, int, float | None]:
        """(steps applied, steps, when the next is due): as the shift last journaled it (an
        operator's hold, skip or promote included), else counted from the schedule."""
        progress = self.store.journal_of_kind(self.deployment_id, ev.ShiftProgressed.kind)
        last = progress[-1].event if progress else None
        if isinstance(last, ev.ShiftProgressed):
            due = last.next_at if last.state == ev.ShiftState.SHIFTING else None
            return last.step, last.steps, due
        done = min(len(shifts), len(self.schedule))
        started = shifts[0].time - self.schedule[0].at_seconds if self.schedule else shifts[0].time
        due = started + self.schedule[done].at_seconds if done < len(self.schedule) else None
        return done, len(self.schedule), due

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def __aenter__(self) -> TrafficGauge:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if exc[0] is None:
            self.sample()  # the figures the run ended on


def _percent(share: float | None) -> int | None:
    return None if share is None else round(share * 100)
