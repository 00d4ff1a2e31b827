"""The traffic gauge of a traffic-shifting deployment: while it shifts, the weight set on the
target (a Lambda alias's target version, or an ECS service's replacement target group on its
production listener), the actual share of the recent requests the router sent there (the
gateways' ledgers, engine.functions.meter, or the service host's balancer counts, windowed the
same way), and where the schedule stands, journaled as TrafficMeasured whenever a figure
changes (and every HEARTBEAT_SECONDS while requests flow), so the console and `get-deployment`
show set against actual weight from the journal alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import events as ev
from engine.configs.traffic import TrafficStep
from engine.functions.meter import AliasWindow, Measured, measured
from engine.services.client import ServiceClient
from engine.services.model import ServiceError
from engine.store import Store

SAMPLE_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0


class _Sampler:
    """Samples a gauge every SAMPLE_SECONDS while used as `async with`, journaling it when a
    figure changes; the last sample is taken as the block ends."""

    def __init__(
        self,
        deployment_id: str,
        store: Store,
        now: Callable[[], float],
        schedule: Sequence[TrafficStep],
    ) -> None:
        self.deployment_id = deployment_id
        self.store = store
        self.now = now
        self.schedule = list(schedule)
        self._last: tuple[object, ...] | None = None
        self._last_wall = 0.0
        self._task: asyncio.Task[None] | None = None

    async def take(self) -> ev.TrafficMeasured | None:
        raise NotImplementedError

    def _journal(self, gauge: ev.TrafficMeasured) -> ev.TrafficMeasured:
        """Append `gauge` if a shown figure changed (or as a heartbeat while requests flow)."""
        actual = gauge.actual_weight
        key = (gauge.set_weight, _percent(actual), gauge.step, gauge.next_shift_at)
        # the wall clock paces the journal: it rates real calls, whatever the run's time scale
        wall = time.monotonic()
        beat = gauge.calls > 0 and wall - self._last_wall >= HEARTBEAT_SECONDS
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
        if not shifts:
            return 0, len(self.schedule), None
        done = min(len(shifts), len(self.schedule))
        started = shifts[0].time - self.schedule[0].at_seconds if self.schedule else shifts[0].time
        due = started + self.schedule[done].at_seconds if done < len(self.schedule) else None
        return done, len(self.schedule), due

    async def _run(self) -> None:
        while True:
            await self.take()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def __aenter__(self) -> _Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if exc[0] is None:
            await self.take()  # the figures the run ended on


class TrafficGauge(_Sampler):
    """Samples a Lambda run's alias; use as `async with TrafficGauge(...):` around the run's
    events."""

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
        super().__init__(deployment_id, store, now, schedule)
        self.functions_root = functions_root
        self.function, self.alias, self.target = function, alias, target_version

    async def take(self) -> ev.TrafficMeasured | None:
        return self.sample()

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
        return self._journal(gauge)


class ServiceGauge(_Sampler):
    """Samples an ECS run's production listener: the weight set on the replacement's target
    group against its share of the requests the listener answered in the window (the host's
    per-group counts, differenced between samples into the Lambda meter's window). Journaled
    as TrafficMeasured with the service as `function`, "production" as `alias` and the
    replacement target group as `target_version`."""

    def __init__(
        self,
        deployment_id: str,
        store: Store,
        now: Callable[[], float],
        host: ServiceClient,
        service: str,
        target_group: str,
        schedule: Sequence[TrafficStep],
    ) -> None:
        super().__init__(deployment_id, store, now, schedule)
        self.host, self.service, self.target = host, service, target_group
        self.window = AliasWindow()
        self._served: dict[str, int] | None = None

    async def take(self) -> ev.TrafficMeasured | None:
        """The gauge now, journaled if it changed; None when the host cannot tell."""
        try:
            routed = await self.host.routed()
        except ServiceError:
            return None
        total = sum(routed.weights.values())
        if not total:
            return None
        weights = {g: w / total for g, w in routed.weights.items()}
        before, self._served = self._served, routed.served
        if before is None or weights != self.window.weights:
            # the first count, or a shift since the last: the requests between were routed
            # partly by the old weights, so the window starts afresh from here
            self.window.record(weights, self.target, 0)
        else:
            # a count lower than before: a new host started counting afresh
            self.window.record_counts(
                weights,
                {
                    group: count - before.get(group, 0) if count >= before.get(group, 0) else count
                    for group, count in routed.served.items()
                },
            )
        calls = Measured(self.window.counts())
        actual = calls.share(self.target)
        done, steps, next_at = self._progress([])
        return self._journal(
            ev.TrafficMeasured(
                self.deployment_id,
                self.now(),
                self.service,
                "production",
                self.target,
                round(weights.get(self.target, 0.0), 4),
                None if actual is None else round(actual, 4),
                calls.calls,
                done,
                steps,
                next_at,
            )
        )


def _percent(share: float | None) -> int | None:
    return None if share is None else round(share * 100)
