"""The console's fold of the event stream (tui/render/state.py), from canned events: fast, no
engine, no processes."""

from __future__ import annotations

from engine import events as ev
from engine.model import (
    SERVER_IN_PLACE_EVENTS,
    DeploymentInfo,
    Diagnostics,
    RevisionRef,
    RollbackInfo,
    Status,
)
from tui.render.state import MAX_OUTPUT_LINES, FleetState

ID = "d-CANNED001"
REVISION = RevisionRef("a" * 64, "/revisions/v2", "directory")


def created(deployment_id: str = ID, **info) -> ev.DeploymentCreated:
    deployment = DeploymentInfo(
        deployment_id, "app", "fleet", "CodeDeployDefault.OneAtATime", Status.CREATED, REVISION,
        **info,
    )  # fmt: skip
    return ev.DeploymentCreated(deployment_id, 1.0, deployment)


def targeted(*names: str) -> ev.InstancesTargeted:
    hosts = tuple(f"local:/srv/{n}" for n in names)
    return ev.InstancesTargeted(ID, 2.0, names, hosts, SERVER_IN_PLACE_EVENTS, 1)


def fold(*events: ev.Event) -> FleetState:
    state = FleetState()
    for event in events:
        state.apply(event)
    return state


def test_a_created_deployment_is_pending_with_its_instances_and_lifecycle() -> None:
    state = fold(created(), targeted("web-1", "web-2"))
    view = state.deployments[ID]
    assert view.status == Status.CREATED and view.started is None and view.ended is None
    assert list(view.instances) == ["web-1", "web-2"]
    web1 = view.instances["web-1"]
    assert web1.host == "local:/srv/web-1" and web1.status == Status.PENDING
    assert list(web1.events) == list(SERVER_IN_PLACE_EVENTS)
    assert {e.status for e in web1.events.values()} == {Status.PENDING}
    assert view.minimum_healthy == 1
    assert view.counts() == {Status.PENDING: 2}


def test_events_of_an_unknown_deployment_are_ignored() -> None:
    state = FleetState()
    assert state.apply(ev.DeploymentStatusChanged("d-OTHER", 1.0, Status.IN_PROGRESS)) is None
    assert state.deployments == {}


def test_a_run_moves_batches_instances_and_events_with_their_times() -> None:
    state = fold(
        created(),
        targeted("web-1", "web-2"),
        ev.DeploymentStatusChanged(ID, 3.0, Status.IN_PROGRESS),
        ev.BatchStarted(ID, 3.5, 1, ("web-1",)),
        ev.InstanceStatusChanged(ID, 4.0, "web-1", Status.IN_PROGRESS),
        ev.LifecycleEventStarted(ID, 4.5, "web-1", "BeforeInstall"),
    )
    view = state.deployments[ID]
    assert view.started == 3.0 and view.batches == [("web-1",)]
    web1 = view.instances["web-1"]
    assert web1.batch == 1 and web1.status == Status.IN_PROGRESS and web1.started == 4.0
    assert web1.current_event == "BeforeInstall"
    assert web1.events["BeforeInstall"].status == Status.IN_PROGRESS
    assert view.instances["web-2"].batch is None
    state.apply(ev.LifecycleEventFinished(ID, 5.0, "web-1", "BeforeInstall", Status.SUCCEEDED))
    state.apply(ev.InstanceStatusChanged(ID, 6.0, "web-1", Status.SUCCEEDED))
    event = web1.events["BeforeInstall"]
    assert (event.status, event.started, event.ended) == (Status.SUCCEEDED, 4.5, 5.0)
    assert web1.ended == 6.0 and web1.current_event is None
    state.apply(ev.DeploymentStatusChanged(ID, 7.0, Status.SUCCEEDED, message="done"))
    assert view.status == Status.SUCCEEDED and view.ended == 7.0 and view.message == "done"


def test_a_failure_keeps_its_evidence_with_control_characters_escaped() -> None:
    diagnostics = Diagnostics("ScriptFailed", "hooks/x.sh", "exit 3\x1b[31m", "boom\x1b]0;t\x07", 3)
    state = fold(
        created(),
        targeted("web-1"),
        ev.LifecycleEventStarted(ID, 3.0, "web-1", "ApplicationStart"),
        ev.LifecycleEventFinished(
            ID, 4.0, "web-1", "ApplicationStart", Status.FAILED, diagnostics, "note\x1b[2J"
        ),
        ev.InstanceStatusChanged(ID, 4.0, "web-1", Status.FAILED),
        ev.DeploymentStatusChanged(ID, 5.0, Status.FAILED, "HEALTH_CONSTRAINTS", "too few"),
    )
    view = state.deployments[ID]
    name, shown = view.instances["web-1"].failure()
    assert name == "ApplicationStart" and shown.exit_code == 3
    assert "\x1b" not in shown.message + shown.log_tail
    assert "\x1b" not in view.instances["web-1"].events["ApplicationStart"].note
    assert (view.error_code, view.message, view.ended) == ("HEALTH_CONSTRAINTS", "too few", 5.0)


def test_hook_output_is_bounded_and_counted() -> None:
    lines = [
        ev.HookOutput(ID, 3.0, "web-1", "Install", "x.sh", "stdout", f"line {n}\n")
        for n in range(2 * MAX_OUTPUT_LINES + 1)
    ]
    instance = fold(created(), targeted("web-1"), *lines).deployments[ID].instances["web-1"]
    assert instance.output_total == 2 * MAX_OUTPUT_LINES + 1
    assert len(instance.output) <= 2 * MAX_OUTPUT_LINES
    assert instance.output[-1] == f"[stdout] line {2 * MAX_OUTPUT_LINES}"


def test_connections_rollback_links_and_notes() -> None:
    state = fold(
        created(),
        targeted("web-1"),
        ev.InstanceConnection(ID, 3.0, "web-1", "connected", "ssh:web-1:22"),
        ev.RollbackLinked(ID, 4.0, rollback_deployment_id="d-ROLLBACK1", message="Rolled back"),
        ev.Note(ID, 5.0, "a note"),
        created("d-ROLLBACK1", rollback=RollbackInfo(rollback_triggering_deployment_id=ID)),
    )
    view = state.deployments[ID]
    assert view.instances["web-1"].connection == "connected"
    assert (view.rollback_id, view.rollback_message) == ("d-ROLLBACK1", "Rolled back")
    assert view.notes == ["a note"]
    assert state.deployments["d-ROLLBACK1"].rolls_back == ID


def test_a_replayed_journal_folds_to_what_was_seen_live() -> None:
    journal = [
        created(),
        targeted("web-1"),
        ev.DeploymentStatusChanged(ID, 3.0, Status.IN_PROGRESS),
        ev.InstanceStatusChanged(ID, 4.0, "web-1", Status.SKIPPED),
        ev.DeploymentStatusChanged(ID, 5.0, Status.STOPPED),
    ]
    live, replay = fold(*journal), fold(*journal)
    assert live.deployments[ID] == replay.deployments[ID]
    assert live.deployments[ID].counts() == {Status.SKIPPED: 1}
    assert live.deployments[ID].ended == 5.0
