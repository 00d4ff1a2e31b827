"""The typed events the engine emits. Each is journaled before anyone sees it (ARCHITECTURE.md
invariant 3).

The store applies every event to its tables (the current state is a projection of the journal)
and appends it to the journal with a sequence number; subscribers read the journal in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from engine.model import (
    DeploymentInfo,
    Diagnostics,
    TrafficHealth,
    TrafficState,
)
from engine.serialize import from_data, to_data


@dataclass(frozen=True)
class Event:
    """Base: every event belongs to one deployment and happened at `time`."""

    kind: ClassVar[str] = "Event"
    deployment_id: str
    time: float


@dataclass(frozen=True)
class DeploymentCreated(Event):
    """A new deployment with everything known at creation (instances come with targeting)."""

    kind: ClassVar[str] = "DeploymentCreated"
    deployment: DeploymentInfo


@dataclass(frozen=True)
class InstancesTargeted(Event):
    """The deployment's instances, in scheduling order, each with its lifecycle events."""

    kind: ClassVar[str] = "InstancesTargeted"
    instances: tuple[str, ...]
    hosts: tuple[str, ...]
    lifecycle_events: tuple[str, ...]
    minimum_healthy: int


@dataclass(frozen=True)
class DeploymentStatusChanged(Event):
    kind: ClassVar[str] = "DeploymentStatusChanged"
    status: str
    error_code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class BatchStarted(Event):
    kind: ClassVar[str] = "BatchStarted"
    batch: int
    instances: tuple[str, ...]


@dataclass(frozen=True)
class InstanceStatusChanged(Event):
    kind: ClassVar[str] = "InstanceStatusChanged"
    instance: str
    status: str


@dataclass(frozen=True)
class LifecycleEventStarted(Event):
    kind: ClassVar[str] = "LifecycleEventStarted"
    instance: str
    event: str


@dataclass(frozen=True)
class LifecycleEventFinished(Event):
    """An event ended: Succeeded, Failed (with diagnostics) or Skipped."""

    kind: ClassVar[str] = "LifecycleEventFinished"
    instance: str
    event: str
    status: str
    diagnostics: Diagnostics | None = None
    note: str = ""


@dataclass(frozen=True)
class ScriptStarted(Event):
    """A hook script began; `pgid` lets recovery end it if the engine dies meanwhile."""

    kind: ClassVar[str] = "ScriptStarted"
    instance: str
    event: str
    script: str
    pgid: int | None = None


@dataclass(frozen=True)
class HookOutput(Event):
    kind: ClassVar[str] = "HookOutput"
    instance: str
    event: str
    script: str
    stream: str
    line: str


@dataclass(frozen=True)
class InstanceConnection(Event):
    """How the engine reaches an SSH instance: connecting, connected, failed or lost."""

    kind: ClassVar[str] = "InstanceConnection"
    instance: str
    state: str
    host: str
    detail: str = ""


@dataclass(frozen=True)
class InstanceRevisionChanged(Event):
    """Install put a revision on an instance: what it runs now."""

    kind: ClassVar[str] = "InstanceRevisionChanged"
    instance: str
    revision_sha256: str


@dataclass(frozen=True)
class StopRequested(Event):
    kind: ClassVar[str] = "StopRequested"
    auto_rollback: bool | None = None  # None: as the group's DEPLOYMENT_STOP_ON_REQUEST says
    reason: str = "MANUAL_STOP"


@dataclass(frozen=True)
class RollbackLinked(Event):
    """rollbackInfo on one deployment: the rollback it started or the one that started it."""

    kind: ClassVar[str] = "RollbackLinked"
    rollback_deployment_id: str | None = None
    rollback_triggering_deployment_id: str | None = None
    message: str | None = None


def rollback_in_progress(rollback_id: str) -> str:
    """An automatic rollback's cause's rollbackMessage while the rollback runs."""
    return f"Rollback {rollback_id} in progress"


def rolled_back(rollback_id: str, status: str) -> str:
    """An automatic rollback's cause's rollbackMessage once the rollback has ended."""
    return f"Rolled back by {rollback_id}, which {status.lower()}"


@dataclass(frozen=True)
class Note(Event):
    """Something the operator should know: an ignored failure, a trigger that failed..."""

    kind: ClassVar[str] = "Note"
    message: str
    level: str = "info"
    instance: str | None = None


@dataclass(frozen=True)
class EngineAttached(Event):
    """A runner process took charge of the deployment (its pid), at start or on resume."""

    kind: ClassVar[str] = "EngineAttached"
    pid: int
    resumed: bool = False


@dataclass(frozen=True)
class AlarmEvaluated(Event):
    """One reading of one of the deployment's alarms (OK, ALARM, INSUFFICIENT_DATA or ERROR);
    an observe-only alarm's readings never stop the deployment."""

    kind: ClassVar[str] = "AlarmEvaluated"
    name: str
    state: str
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    observe_only: bool = False


@dataclass(frozen=True)
class TrafficShifted(Event):
    """A Lambda deployment's alias now sends `weight` (0.0 to 1.0) of its calls to the target
    version and the rest to the original one."""

    kind: ClassVar[str] = "TrafficShifted"
    function: str
    alias: str
    original_version: str
    target_version: str
    weight: float


@dataclass(frozen=True)
class TrafficMeasured(Event):
    """A traffic-shifting deployment's gauge: the weight set on the target version against the
    share of the recent calls the router actually sent it (None: no call to measure), over
    `calls` calls; the shift's step (1-based, of `steps`) and when the next one is due on the
    run's clock (None after the last)."""

    kind: ClassVar[str] = "TrafficMeasured"
    function: str
    alias: str
    target_version: str
    set_weight: float
    actual_weight: float | None
    calls: int
    step: int
    steps: int
    next_shift_at: float | None = None


@dataclass(frozen=True)
class InstanceTrafficChanged(Event):
    """An instance's state in the deployment's load balancer changed: in service, draining
    (with its open connections counting down) or out of service, and its health checks."""

    kind: ClassVar[str] = "InstanceTrafficChanged"
    instance: str
    state: TrafficState
    health: TrafficHealth
    open_connections: int | None = None
    requests_served: int | None = None
    detail: str = ""


class ShiftAction(StrEnum):
    """What an operator may do to a running traffic shift (beyond what CodeDeploy offers)."""

    HOLD = "hold"  # the weight stays where it is and the countdown pauses
    RESUME = "resume"  # the countdown goes on from where it paused
    SKIP = "skip"  # the current wait ends: the next step now
    PROMOTE = "promote"  # all traffic to the target at once


class ShiftState(StrEnum):
    SHIFTING = "shifting"  # counting down to the next step
    HELD = "held"
    DONE = "done"  # all traffic on the target
    STOPPED = "stopped"  # ended by a stop or a failure (the run puts traffic back)


@dataclass(frozen=True)
class ShiftControlRequested(Event):
    """An operator asked the deployment's running traffic shift to hold, resume, skip its
    wait or promote; the runner applies it and answers with a ShiftProgressed (or a Note)."""

    kind: ClassVar[str] = "ShiftControlRequested"
    action: str


@dataclass(frozen=True)
class ShiftProgressed(Event):
    """Where a traffic shift stands: `step` of `steps` applied, `weight` (0.0 to 1.0) on the
    target. While shifting, the next step is due at `next_at` (the run's clock), `remaining`
    seconds after this event; while held, `remaining` is what is left once resumed. `action`
    is the operator's action that caused this ("" when the schedule did)."""

    kind: ClassVar[str] = "ShiftProgressed"
    state: str
    step: int
    steps: int
    weight: float
    next_at: float | None = None
    remaining: float | None = None
    action: str = ""


@dataclass(frozen=True)
class TaskSetView:
    """An ECS task set as CodeDeploy shows one: its Blue/Green label, status (PRIMARY, ACTIVE,
    DRAINING), task definition, target group, task counts and its share (0 to 100) of the
    production and test listeners' traffic."""

    identifier: str
    label: str
    status: str
    task_definition: str
    target_group: str
    desired_count: int
    pending_count: int
    running_count: int
    traffic_weight: float
    test_traffic_weight: float


@dataclass(frozen=True)
class TaskSetsChanged(Event):
    """An ECS deployment's service after a change the run made: its task sets and where its
    production and test listeners answer (host:port)."""

    kind: ClassVar[str] = "TaskSetsChanged"
    service: str
    production: str
    test: str | None
    task_sets: tuple[TaskSetView, ...]


@dataclass(frozen=True)
class BlueGreenFleets(Event):
    """A Server blue/green deployment's fleets: the original (blue) instances, the
    replacement (green) ones, and which green ones were copied for it."""

    kind: ClassVar[str] = "BlueGreenFleets"
    blue: tuple[str, ...]
    green: tuple[str, ...]
    copied: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetWaitStarted(Event):
    """A blue/green wait began (READY_WAIT or TERMINATION_WAIT): it ends by continue-deployment
    or at `deadline` (a clock time; None: only by continue-deployment), then does `action`."""

    kind: ClassVar[str] = "FleetWaitStarted"
    wait_type: str
    deadline: float | None
    action: str


@dataclass(frozen=True)
class FleetWaitEnded(Event):
    """A blue/green wait ended: `how` is continued, timed out or stopped."""

    kind: ClassVar[str] = "FleetWaitEnded"
    wait_type: str
    how: str


@dataclass(frozen=True)
class ContinueRequested(Event):
    """continue-deployment asked the runner to end a blue/green wait now."""

    kind: ClassVar[str] = "ContinueRequested"
    wait_type: str


@dataclass(frozen=True)
class FleetTrafficMoved(Event):
    """Which fleet of a blue/green deployment now takes the traffic (Blue or Green)."""

    kind: ClassVar[str] = "FleetTrafficMoved"
    traffic_on: str


def event_classes() -> frozenset[type[Event]]:
    """Every concrete event class: each consumer of the journal (the store's projection, the
    console's fold, the plain renderer) declares for each one whether it handles it or
    leaves it to the journal (tests/architecture/test_event_coverage.py holds them to it)."""
    found: set[type[Event]] = set()
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return frozenset(found)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DeploymentCreated,
        InstancesTargeted,
        DeploymentStatusChanged,
        BatchStarted,
        InstanceStatusChanged,
        LifecycleEventStarted,
        LifecycleEventFinished,
        ScriptStarted,
        HookOutput,
        InstanceConnection,
        InstanceRevisionChanged,
        StopRequested,
        RollbackLinked,
        Note,
        EngineAttached,
        AlarmEvaluated,
        TrafficShifted,
        TrafficMeasured,
        InstanceTrafficChanged,
        ShiftControlRequested,
        ShiftProgressed,
        TaskSetsChanged,
        BlueGreenFleets,
        FleetWaitStarted,
        FleetWaitEnded,
        ContinueRequested,
        FleetTrafficMoved,
    )
}


def encode(event: Event) -> str:
    data = to_data(event)
    data.pop("deployment_id", None)
    data.pop("time", None)
    return json.dumps(data, separators=(",", ":"))


def decode(kind: str, deployment_id: str, time: float, payload: str) -> Event:
    data: dict[str, Any] = json.loads(payload)
    data.update(deployment_id=deployment_id, time=time)
    return from_data(EVENT_TYPES[kind], data)


@dataclass(frozen=True)
class JournalEntry:
    """An event with its place in the journal."""

    seq: int
    event: Event
