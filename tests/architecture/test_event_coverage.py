"""Every event class is handled by each consumer of the journal, or declared journal-only.

A new event (a traffic weight change...) fails here until the store's projection, the
console's fold (tui/render/state.py) and the plain renderer each say what they do with it, and
what they say is checked against what they do with a sample of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine import events as ev
from engine.model import (
    IN_PROGRESS,
    DeploymentInfo,
    Diagnostics,
    RevisionRef,
    TrafficHealth,
    TrafficState,
)
from engine.store import Store
from tui.render.plain import PlainRenderer
from tui.render.state import HANDLED_EVENTS, JOURNAL_ONLY_EVENTS, FleetState

D = "d-COVERAGE1"
T = 1_700_000_000.0
REVISION = RevisionRef("a" * 64, "/revisions/app", "directory")
DEPLOYMENT = DeploymentInfo(D, "app", "web", "CodeDeployDefault.OneAtATime", "Created", REVISION)
EVENTS = ("ApplicationStop", "Install")

# One event of each class, of the kind that changes what a consumer shows or stores.
SAMPLES: dict[type[ev.Event], Callable[[], ev.Event]] = {
    ev.DeploymentCreated: lambda: ev.DeploymentCreated(D, T, DEPLOYMENT),
    ev.InstancesTargeted: lambda: ev.InstancesTargeted(D, T, ("i1", "i2"), ("h1", "h2"), EVENTS, 1),
    ev.DeploymentStatusChanged: lambda: ev.DeploymentStatusChanged(D, T, IN_PROGRESS),
    ev.BatchStarted: lambda: ev.BatchStarted(D, T, 1, ("i1",)),
    ev.InstanceStatusChanged: lambda: ev.InstanceStatusChanged(D, T, "i1", IN_PROGRESS),
    ev.LifecycleEventStarted: lambda: ev.LifecycleEventStarted(D, T, "i1", "Install"),
    ev.LifecycleEventFinished: lambda: ev.LifecycleEventFinished(
        D, T, "i1", "Install", "Failed", Diagnostics("ScriptFailed", "x.sh", "exit 1")
    ),
    ev.ScriptStarted: lambda: ev.ScriptStarted(D, T, "i1", "Install", "x.sh", 4321),
    ev.HookOutput: lambda: ev.HookOutput(D, T, "i1", "Install", "x.sh", "stdout", "hello"),
    ev.InstanceConnection: lambda: ev.InstanceConnection(D, T, "i1", "connected", "h1"),
    ev.InstanceRevisionChanged: lambda: ev.InstanceRevisionChanged(D, T, "i1", "b" * 64),
    ev.StopRequested: lambda: ev.StopRequested(D, T, True),
    ev.RollbackLinked: lambda: ev.RollbackLinked(D, T, message="No rollback: it is off"),
    ev.Note: lambda: ev.Note(D, T, "something to know", "warning", "i1"),
    ev.EngineAttached: lambda: ev.EngineAttached(D, T, 4321),
    ev.AlarmEvaluated: lambda: ev.AlarmEvaluated(D, T, "errors", "ALARM", 0.2, 0.05, "0.2 > 0.05"),
    ev.TrafficShifted: lambda: ev.TrafficShifted(D, T, "hello", "live", "1", "2", 0.1),
    ev.TrafficMeasured: lambda: ev.TrafficMeasured(
        D, T, "hello", "live", "2", 0.1, 0.095, 200, 1, 2, T + 300
    ),
    ev.InstanceTrafficChanged: lambda: ev.InstanceTrafficChanged(
        D, T, "i1", TrafficState.DRAINING, TrafficHealth.OK, 3, 120, "L7OK 200"
    ),
    ev.ShiftControlRequested: lambda: ev.ShiftControlRequested(D, T, "hold"),
    ev.ShiftProgressed: lambda: ev.ShiftProgressed(D, T, "shifting", 1, 11, 0.1, T + 60, 60.0),
    ev.TaskSetsChanged: lambda: ev.TaskSetsChanged(
        D,
        T,
        "web",
        "127.0.0.1:8080",
        None,
        (ev.TaskSetView("ecs-svc/web/1", "Blue", "PRIMARY", "web:1", "web-tg-1", 3, 0, 3, 100, 0),),
    ),
    ev.BlueGreenFleets: lambda: ev.BlueGreenFleets(D, T, ("i1",), ("i1-d-X",), ("i1-d-X",)),
    ev.FleetWaitStarted: lambda: ev.FleetWaitStarted(D, T, "READY_WAIT", T + 60, "STOP"),
    ev.FleetWaitEnded: lambda: ev.FleetWaitEnded(D, T, "READY_WAIT", "continued"),
    ev.ContinueRequested: lambda: ev.ContinueRequested(D, T, "READY_WAIT"),
    ev.FleetTrafficMoved: lambda: ev.FleetTrafficMoved(D, T, "Green"),
}
ALL = sorted(ev.event_classes(), key=lambda cls: cls.kind)


def before(cls: type[ev.Event]) -> list[ev.Event]:
    """What a deployment has seen before the sample can apply: created, then targeted."""
    if cls is ev.DeploymentCreated:
        return []
    created = SAMPLES[ev.DeploymentCreated]()
    return [created] if cls is ev.InstancesTargeted else [created, SAMPLES[ev.InstancesTargeted]()]


def test_every_event_class_can_be_decoded_and_has_a_sample() -> None:
    assert set(ev.EVENT_TYPES.values()) == set(ALL)
    assert set(SAMPLES) == set(ALL), "add a sample of the new event above"


@pytest.mark.parametrize(
    "handled, journal_only",
    [
        (Store.PROJECTED, Store.JOURNAL_ONLY),
        (HANDLED_EVENTS, JOURNAL_ONLY_EVENTS),
        (PlainRenderer.HANDLED, PlainRenderer.JOURNAL_ONLY),
    ],
    ids=["store", "console-state", "plain-renderer"],
)
def test_each_consumer_declares_every_event(handled: frozenset, journal_only: frozenset) -> None:
    assert not handled & journal_only, "an event cannot be both handled and journal-only"
    undeclared = {cls.kind for cls in ALL} - {cls.kind for cls in handled | journal_only}
    assert not undeclared, f"declare these as handled or journal-only: {sorted(undeclared)}"


def _tables(store: Store) -> dict[str, list[tuple]]:
    names = [r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {
        name: [tuple(row) for row in store.db.execute(f"SELECT * FROM {name}")]
        for name in names
        if name not in ("journal", "sqlite_sequence")
    }


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.kind)
def test_store_projects_what_it_declares(tmp_path: Path, cls: type[ev.Event]) -> None:
    store = Store(tmp_path / "state.db")
    try:
        store.append_many(before(cls))
        store.register_revision("app", REVISION, "")
        tables = _tables(store)
        store.append(SAMPLES[cls]())
        changed = _tables(store) != tables
        assert changed == (cls in Store.PROJECTED)
        assert [e.event for e in store.journal()][-1] == SAMPLES[cls]()  # journaled either way
    finally:
        store.close()


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.kind)
def test_console_state_folds_what_it_declares(cls: type[ev.Event]) -> None:
    state = FleetState()
    for event in before(cls):
        state.apply(event)
    shown = repr(state.deployments)
    state.apply(SAMPLES[cls]())
    assert (repr(state.deployments) != shown) == (cls in HANDLED_EVENTS)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.kind)
def test_plain_renderer_writes_what_it_declares(cls: type[ev.Event]) -> None:
    lines: list[str] = []
    PlainRenderer(lines.append, show_output=True).render(SAMPLES[cls]())
    assert bool(lines) == (cls in PlainRenderer.HANDLED)
