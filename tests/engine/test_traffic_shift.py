"""The traffic-shift step on a manual clock and a real store: the schedule's steps at their
times, and the operator's hold, resume, skip and promote (applied directly and through the
journal), each journaled; requests that make no sense are refused (by the facade's check) or
ignored with a warning (by the run, when the shift moved on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine import events as ev
from engine.clock import ManualClock
from engine.configs import get_config
from engine.configs.traffic import TrafficStep, traffic_schedule
from engine.deployments.shift import TrafficShift, shift_refusal
from engine.store import Store

D = "d-SHIFT0001"
LINEAR = traffic_schedule(
    get_config("CodeDeployDefault.LambdaLinear10PercentEvery1Minute", {}).traffic_routing  # type: ignore[union-attr]
)


class Harness:
    def __init__(self, store: Store, schedule: list[TrafficStep]) -> None:
        self.store = store
        self.clock = ManualClock()
        self.start = self.clock.now()
        self.routed: list[tuple[float, float]] = []  # (seconds since start, weight)

        async def route(weight: float) -> None:
            self.routed.append((self.clock.now() - self.start, weight))

        self.shift = TrafficShift(D, store, self.clock, schedule, route)
        self.task = asyncio.create_task(self.shift.run())

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.001)

    async def sleeping(self) -> None:
        """Until the shift waits: on the clock, held for a resume, or done."""
        await self.until(lambda: self.clock.sleeping > 0 or self.shift.held or self.task.done())

    async def advance(self, seconds: float) -> None:
        await self.sleeping()
        await self.clock.advance(seconds)
        await asyncio.sleep(0.01)  # let the woken shift apply its step
        await self.sleeping()

    def progress(self) -> list[ev.ShiftProgressed]:
        entries = self.store.journal_of_kind(D, ev.ShiftProgressed.kind)
        return [e.event for e in entries if isinstance(e.event, ev.ShiftProgressed)]

    def notes(self) -> list[str]:
        return [e.event.message for e in self.store.journal_of_kind(D, ev.Note.kind)]  # type: ignore[attr-defined]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(tmp_path / "state.db")
    yield opened
    opened.close()


async def test_the_steps_come_at_the_schedules_times(store: Store) -> None:
    harness = Harness(store, LINEAR)
    for _ in range(len(LINEAR) - 1):
        await harness.advance(60)
    await harness.task
    assert harness.routed == [(s.at_seconds, s.target_percent / 100) for s in LINEAR]
    progress = harness.progress()
    assert [(p.state, p.step, p.steps) for p in progress] == [
        *(("shifting", k, 10) for k in range(1, 10)),
        ("done", 10, 10),
    ]
    assert all(p.remaining == 60 and p.next_at == p.time + 60 for p in progress[:-1])


async def test_hold_keeps_the_weight_and_pauses_the_countdown(store: Store) -> None:
    harness = Harness(store, LINEAR)
    await harness.advance(20)
    harness.shift.control(ev.ShiftAction.HOLD)
    held = harness.progress()[-1]
    assert (held.state, held.step, held.weight, held.remaining) == ("held", 1, 0.1, 40)
    assert held.action == "hold" and held.next_at is None
    await harness.advance(1000)
    assert harness.routed == [(0, 0.1)]  # the weight stayed
    harness.shift.control(ev.ShiftAction.RESUME)
    resumed = harness.progress()[-1]
    assert (resumed.state, resumed.remaining, resumed.action) == ("shifting", 40, "resume")
    await harness.advance(39)
    assert harness.routed == [(0, 0.1)]
    await harness.advance(1)
    assert harness.routed == [(0, 0.1), (1060, 0.2)]  # 40 s of countdown left at the hold
    harness.task.cancel()


async def test_skip_takes_the_next_step_now_and_counts_the_next_wait_from_it(
    store: Store,
) -> None:
    harness = Harness(store, LINEAR)
    await harness.advance(10)
    harness.shift.control(ev.ShiftAction.SKIP)
    await harness.until(lambda: len(harness.routed) == 2)
    assert harness.routed == [(0, 0.1), (10, 0.2)]
    skipped = harness.progress()[-1]
    assert (skipped.step, skipped.action, skipped.remaining) == (2, "skip", 60)
    await harness.advance(59)
    assert len(harness.routed) == 2
    await harness.advance(1)
    assert harness.routed[-1] == (70, 0.3)
    harness.task.cancel()


async def test_promote_sends_everything_to_the_target_at_once_even_when_held(
    store: Store,
) -> None:
    harness = Harness(store, LINEAR)
    await harness.advance(60)
    harness.shift.control(ev.ShiftAction.HOLD)
    harness.shift.control(ev.ShiftAction.PROMOTE)
    await harness.task
    assert harness.routed == [(0, 0.1), (60, 0.2), (60, 1.0)]
    done = harness.progress()[-1]
    assert (done.state, done.step, done.weight, done.action) == ("done", 10, 1.0, "promote")


async def test_requests_that_no_longer_make_sense_are_ignored_with_a_warning(
    store: Store,
) -> None:
    harness = Harness(store, LINEAR)
    await harness.sleeping()
    harness.shift.control(ev.ShiftAction.RESUME)
    harness.shift.control(ev.ShiftAction.HOLD)
    harness.shift.control(ev.ShiftAction.HOLD)
    harness.shift.control(ev.ShiftAction.SKIP)
    assert harness.notes() == [
        "resume of the traffic shift ignored: the shift is not held",
        "hold of the traffic shift ignored: the shift is already held",
        "skip of the traffic shift ignored: the shift is held: resume it first",
    ]
    assert [p.state for p in harness.progress()] == ["shifting", "held"]
    harness.task.cancel()


async def test_requests_reach_the_shift_through_the_journal(store: Store) -> None:
    """What the facade journals from another process: the shift polls for it and answers."""
    harness = Harness(store, LINEAR)
    await harness.sleeping()
    store.append(ev.ShiftControlRequested(D, harness.clock.now(), "hold"))
    await harness.until(lambda: harness.progress()[-1].state == "held")
    store.append(ev.ShiftControlRequested(D, harness.clock.now(), "promote"))
    await harness.task
    assert harness.routed[-1] == (0, 1.0)


async def test_a_stopped_shift_says_so_and_leaves_the_weight_to_the_run(store: Store) -> None:
    harness = Harness(store, LINEAR)
    await harness.advance(60)
    harness.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await harness.task
    assert harness.progress()[-1].state == "stopped"
    assert harness.routed == [(0, 0.1), (60, 0.2)]


def entries(*events: ev.Event) -> list[ev.JournalEntry]:
    return [ev.JournalEntry(seq, event) for seq, event in enumerate(events, 1)]


def progress(state: str) -> ev.ShiftProgressed:
    return ev.ShiftProgressed(D, 0.0, state, 1, 10, 0.1, None, 60.0)


def request(action: str) -> ev.ShiftControlRequested:
    return ev.ShiftControlRequested(D, 0.0, action)


@pytest.mark.parametrize(
    ("journal", "action", "refused"),
    [
        ((), "hold", "is not shifting traffic now"),
        ((progress("done"),), "promote", "is not shifting traffic now"),
        ((progress("stopped"),), "skip", "is not shifting traffic now"),
        ((progress("held"),), "hold", "is already held: resume it with `deploydeck"),
        ((progress("shifting"), request("hold")), "hold", "is already held"),
        ((progress("shifting"),), "resume", "is not held: there is nothing to resume"),
        ((progress("held"),), "skip", "is held, so no wait runs to skip"),
        ((progress("shifting"), request("promote")), "hold", "is already being promoted"),
        ((progress("shifting"),), "hold", None),
        ((progress("shifting"),), "skip", None),
        ((progress("held"),), "resume", None),
        ((progress("held"),), "promote", None),
        ((progress("held"), request("resume")), "skip", None),
    ],
)
def test_the_facades_check_refuses_what_makes_no_sense(
    journal: tuple[ev.Event, ...], action: str, refused: str | None
) -> None:
    answer = shift_refusal(D, ev.ShiftAction(action), entries(*journal))
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and refused in answer and D in answer
