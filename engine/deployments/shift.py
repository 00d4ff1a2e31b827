"""The traffic-shift step: moves a weighted router (a Lambda alias, an ECS production listener)
from the original to the target through a config's schedule, on the run's clock, under operator
control: hold (the weight stays, the countdown pauses), resume, skip the current wait (the next
step now) and promote (all traffic to the target at once).

Operators ask through the journal (ShiftControlRequested, written by the facade from any
process); the shift polls for requests while it runs, applies each and answers with a
ShiftProgressed, or a warning Note when a request no longer makes sense (the shift moved on).
The router journals the weights themselves (TrafficShifted, TaskSetsChanged...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from engine import events as ev
from engine.clock import Clock
from engine.configs.traffic import TrafficStep
from engine.store import Store

CONTROL_POLL_SECONDS = 0.1  # how often the journal is read for operator requests (real time)

Route = Callable[[float], Awaitable[None]]
"""Send this share (0.0 to 1.0) of traffic to the target and the rest to the original."""


def shift_refusal(
    deployment_id: str, action: ev.ShiftAction, journal: Sequence[ev.JournalEntry]
) -> str | None:
    """Why `action` makes no sense for the deployment's shift as `journal` (its ShiftProgressed
    and ShiftControlRequested entries, in order) leaves it; None when it does. Requests not yet
    answered count as applied, so a second hold is refused before the runner sees the first."""
    progress: ev.ShiftProgressed | None = None
    pending: list[str] = []
    for entry in journal:
        if isinstance(entry.event, ev.ShiftProgressed):
            progress, pending = entry.event, []
        elif isinstance(entry.event, ev.ShiftControlRequested):
            pending.append(entry.event.action)
    if progress is None or progress.state in (ev.ShiftState.DONE, ev.ShiftState.STOPPED):
        return (
            f"{deployment_id} is not shifting traffic now: hold, resume, skip and promote act "
            "on a Lambda or ECS deployment during AllowTraffic"
        )
    held = progress.state == ev.ShiftState.HELD
    for action_pending in pending:
        if action_pending == ev.ShiftAction.PROMOTE:
            return f"{deployment_id} is already being promoted to 100%"
        held = {ev.ShiftAction.HOLD: True, ev.ShiftAction.RESUME: False}.get(
            ev.ShiftAction(action_pending), held
        )
    resume = f"resume it with `deploydeck resume-traffic-shift --deployment-id {deployment_id}`"
    if action == ev.ShiftAction.HOLD and held:
        return f"{deployment_id}'s traffic shift is already held: {resume}, or promote it"
    if action == ev.ShiftAction.RESUME and not held:
        return f"{deployment_id}'s traffic shift is not held: there is nothing to resume"
    if action == ev.ShiftAction.SKIP and held:
        return f"{deployment_id}'s traffic shift is held, so no wait runs to skip: {resume}"
    return None


class TrafficShift:
    """One run of a schedule through `route`. `run` returns once all traffic is on the target;
    cancelling it (a stop) leaves the weight where it is, for the run to put back."""

    def __init__(
        self,
        deployment_id: str,
        store: Store,
        clock: Clock,
        schedule: Sequence[TrafficStep],
        route: Route,
    ) -> None:
        if not schedule:
            raise ValueError("a traffic shift needs at least one step")
        self.id = deployment_id
        self.store = store
        self.clock = clock
        self.schedule = list(schedule)
        self.route = route
        self.step = 0  # steps applied so far
        self.weight = 0.0
        self.deadline: float | None = None  # when the next step is due (None: held or done)
        self.remaining = 0.0  # while held: what is left of the wait
        self.held = False
        self._skip = False
        self._promote = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        poller = asyncio.create_task(self._poll(self.store.last_seq()))
        try:
            await self._steps()
        except asyncio.CancelledError:
            self._progress(ev.ShiftState.STOPPED)
            raise
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _steps(self) -> None:
        action = ""
        while True:
            target = self.schedule[self.step]
            if self._promote:
                await self._apply(len(self.schedule), 1.0, ev.ShiftAction.PROMOTE)
                return
            await self._apply(self.step + 1, target.target_percent / 100, action)
            if self.step == len(self.schedule):
                return
            action = await self._wait()

    async def _apply(self, step: int, weight: float, action: str) -> None:
        due = self.deadline
        await self.route(weight)
        self.step, self.weight = step, weight
        if step < len(self.schedule) and weight < 1.0:
            gap = self.schedule[step].at_seconds - self.schedule[step - 1].at_seconds
            # the next step is due one gap after this one was: after a late wake-up or a skip,
            # from when it was due (a skip makes it due now)
            base = self.clock.now() if due is None or action else due
            self.deadline = base + gap
            self._progress(ev.ShiftState.SHIFTING, action)
        else:
            self.step, self.deadline = len(self.schedule), None
            self._progress(ev.ShiftState.DONE, action)

    async def _wait(self) -> str:
        """Until the next step is due, or an operator skips or promotes; what ended the wait."""
        while True:
            self._wake.clear()
            if self._promote:
                return ev.ShiftAction.PROMOTE
            if self._skip:
                self._skip = False
                return ev.ShiftAction.SKIP
            if self.held:
                await self._wake.wait()
                continue
            assert self.deadline is not None
            left = self.deadline - self.clock.now()
            if left <= 0:  # a timer may fire a hair early: the loop sleeps again until due
                return ""
            sleep = asyncio.ensure_future(self.clock.sleep(left))
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                wake.cancel()

    def control(self, action: ev.ShiftAction) -> None:
        """Apply an operator's request; a warning Note when it no longer makes sense."""
        now = self.clock.now()
        problem = None
        if self.step == 0:
            problem = "the shift has not started"
        elif self.step >= len(self.schedule):
            problem = "the shift already reached 100%"
        elif action == ev.ShiftAction.HOLD:
            if self.held:
                problem = "the shift is already held"
            else:
                assert self.deadline is not None
                self.held, self.remaining, self.deadline = True, self.deadline - now, None
                self._progress(ev.ShiftState.HELD, action)
        elif action == ev.ShiftAction.RESUME:
            if not self.held:
                problem = "the shift is not held"
            else:
                self.held, self.deadline = False, now + self.remaining
                self._progress(ev.ShiftState.SHIFTING, action)
        elif action == ev.ShiftAction.SKIP:
            if self.held:
                problem = "the shift is held: resume it first"
            else:
                self._skip = True
        else:
            self.held, self._promote = False, True
        if problem is not None:
            self.store.append(
                ev.Note(
                    self.id, now, f"{action} of the traffic shift ignored: {problem}", "warning"
                )
            )
        self._wake.set()

    def _progress(self, state: ev.ShiftState, action: str = "") -> None:
        now = self.clock.now()
        remaining = None
        if state == ev.ShiftState.HELD:
            remaining = max(0.0, self.remaining)
        elif self.deadline is not None and state == ev.ShiftState.SHIFTING:
            remaining = max(0.0, self.deadline - now)
        self.store.append(
            ev.ShiftProgressed(
                self.id,
                now,
                str(state),
                self.step,
                len(self.schedule),
                self.weight,
                self.deadline if state == ev.ShiftState.SHIFTING else None,
                remaining,
                str(action),
            )
        )

    async def _poll(self, after: int) -> None:
        while True:
            for entry in self.store.journal_of_kind(self.id, ev.ShiftControlRequested.kind, after):
                after = entry.seq
                assert isinstance(entry.event, ev.ShiftControlRequested)
                try:
                    action = ev.ShiftAction(entry.event.action)
                except ValueError:
                    continue  # not one this engine knows: the facade never writes it
                self.control(action)
            await asyncio.sleep(CONTROL_POLL_SECONDS)
