"""The UI's fold of the event stream: what each deployment, instance and event looks like now.

Renderers (live CLI, console) apply journal events here and draw from it; the engine's store
is never read for that, so replaying a journal draws exactly what was seen live.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine import events as ev
from engine.model import DeploymentInfo, Diagnostics, Status
from tui.render.terminal_text import printable


@dataclass
class EventView:
    status: str = Status.PENDING
    started: float | None = None
    ended: float | None = None
    diagnostics: Diagnostics | None = None
    note: str = ""


@dataclass
class InstanceView:
    name: str
    host: str = ""
    batch: int | None = None
    status: str = Status.PENDING
    started: float | None = None
    ended: float | None = None
    events: dict[str, EventView] = field(default_factory=dict)
    current_event: str | None = None
    output: list[str] = field(default_factory=list)
    output_total: int = 0  # lines ever received; `output` keeps the last MAX_OUTPUT_LINES
    connection: str = ""  # SSH instances: a ConnectionState (engine/model.py), "" for local

    def failure(self) -> tuple[str, Diagnostics] | None:
        for name, view in self.events.items():
            if view.diagnostics is not None and view.status == Status.FAILED:
                return name, view.diagnostics
        return None


@dataclass
class DeploymentView:
    info: DeploymentInfo
    status: str
    lifecycle: tuple[str, ...] = ()
    minimum_healthy: int | None = None
    instances: dict[str, InstanceView] = field(default_factory=dict)
    batches: list[tuple[str, ...]] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error_code: str | None = None
    message: str | None = None
    rollback_id: str | None = None
    rolls_back: str | None = None
    rollback_message: str | None = None
    notes: list[str] = field(default_factory=list)
    # Each alarm's last reading, by name (for the console's alarm lights).
    alarms: dict[str, ev.AlarmEvaluated] = field(default_factory=dict)
    target_weight: float | None = None  # a Lambda shift's share on the target version
    shifted: ev.TrafficShifted | None = None  # the last shift: which versions, what weight
    gauge: ev.TrafficMeasured | None = None  # set against actual weight, the schedule's step
    # Each instance's last state in the load balancer, by name (traffic control only).
    traffic: dict[str, ev.InstanceTrafficChanged] = field(default_factory=dict)
    shift: ev.ShiftProgressed | None = None  # where a traffic shift stands (step, countdown)
    task_sets: ev.TaskSetsChanged | None = None  # an ECS deployment's service, as last changed
    # Server blue/green: the fleets, the fleet taking traffic and the wait under way.
    blue: tuple[str, ...] = ()
    green: tuple[str, ...] = ()
    traffic_on: str = ""
    wait: ev.FleetWaitStarted | None = None
    wait_ended: str = ""  # how the last wait ended, e.g. "READY_WAIT continued"
    # Requests the balancer sent to each revision (by sha256; "" unknown) during the run.
    served: dict[str, int] = field(default_factory=dict)
    # When its engine process (last) took charge, on the run's clock: a resumed run's clock
    # starts again from the wall clock's time.
    clock_origin: float | None = None
    last_time: float | None = None  # the latest event's time (the run's clock, mostly)
    # where the run's clock stands by the wall clock, fitted as its events are seen (every
    # screen of the deployment reads the same fit)
    clock: RunClock = field(default_factory=lambda: RunClock(), compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for view in self.instances.values():
            counts[view.status] = counts.get(view.status, 0) + 1
        return counts


MAX_OUTPUT_LINES = 500

# The events the fold draws from, and those it leaves to the journal; every event class is in
# one of the two (tests/architecture/test_event_coverage.py).
HANDLED_EVENTS: frozenset[type[ev.Event]] = frozenset(
    {
        ev.DeploymentCreated,
        ev.InstancesTargeted,
        ev.DeploymentStatusChanged,
        ev.BatchStarted,
        ev.InstanceStatusChanged,
        ev.LifecycleEventStarted,
        ev.LifecycleEventFinished,
        ev.HookOutput,
        ev.InstanceConnection,
        ev.RollbackLinked,
        ev.Note,
        ev.EngineAttached,
        ev.AlarmEvaluated,
        ev.TrafficShifted,
        ev.TrafficMeasured,
        ev.InstanceTrafficChanged,
        ev.ShiftProgressed,
        ev.TaskSetsChanged,
        ev.BlueGreenFleets,
        ev.FleetWaitStarted,
        ev.FleetWaitEnded,
        ev.FleetTrafficMoved,
    }
)
JOURNAL_ONLY_EVENTS: frozenset[type[ev.Event]] = frozenset(
    {
        ev.ScriptStarted,
        ev.InstanceRevisionChanged,
        ev.StopRequested,
        ev.ShiftControlRequested,
        ev.ContinueRequested,
    }
)


class FleetState:
    """Every deployment seen in the stream, folded; `apply` returns the deployment touched."""

    def __init__(self) -> None:
        self.deployments: dict[str, DeploymentView] = {}

    def apply(self, event: ev.Event) -> DeploymentView | None:
        if isinstance(event, ev.DeploymentCreated):
            view = DeploymentView(event.deployment, event.deployment.status)
            view.rolls_back = event.deployment.rollback.rollback_triggering_deployment_id
            self.deployments[event.deployment_id] = view
            return view
        known = self.deployments.get(event.deployment_id)
        if known is None:
            return None
        view = known
        match event:
            case ev.InstancesTargeted():
                view.lifecycle = event.lifecycle_events
                view.minimum_healthy = event.minimum_healthy
                for name, host in zip(event.instances, event.hosts, strict=True):
                    view.instances[name] = InstanceView(
                        name, host, events={e: EventView() for e in event.lifecycle_events}
                    )
            case ev.DeploymentStatusChanged():
                view.status = event.status
                if event.status == Status.IN_PROGRESS and view.started is None:
                    view.started = event.time
                if event.status in (Status.SUCCEEDED, Status.FAILED, Status.STOPPED):
                    view.ended = event.time
                view.error_code = event.error_code or view.error_code
                view.message = event.message or view.message
            case ev.EngineAttached():
                view.clock_origin = event.time
            case ev.BatchStarted():
                view.batches.append(event.instances)
                for name in event.instances:
                    if name in view.instances:
                        view.instances[name].batch = event.batch
            case ev.InstanceStatusChanged():
                instance = view.instances.get(event.instance)
                if instance is not None:
                    instance.status = event.status
                    if event.status == Status.IN_PROGRESS:
                        instance.started, instance.ended = event.time, None
                    elif event.status != Status.PENDING:
                        instance.ended = event.time
                        instance.current_event = None
            case ev.LifecycleEventStarted():
                instance = view.instances.get(event.instance)
                if instance is not None:
                    instance.current_event = event.event
                    instance.events[event.event] = EventView(Status.IN_PROGRESS, event.time)
            case ev.LifecycleEventFinished():
                instance = view.instances.get(event.instance)
                if instance is not None:
                    current = instance.events.get(event.event) or EventView()
                    instance.events[event.event] = EventView(
                        event.status,
                        current.started,
                        event.time,
                        _printable_diagnostics(event.diagnostics),
                        event.note and printable(event.note),
                    )
            case ev.HookOutput():
                instance = view.instances.get(event.instance)
                if instance is not None:
                    instance.output.append(printable(f"[{event.stream}] {event.line.rstrip()}"))
                    instance.output_total += 1
                    if len(instance.output) > 2 * MAX_OUTPUT_LINES:
                        del instance.output[:-MAX_OUTPUT_LINES]
            case ev.InstanceConnection():
                instance = view.instances.get(event.instance)
                if instance is not None:
                    instance.connection = event.state
            case ev.RollbackLinked():
                view.rollback_id = event.rollback_deployment_id or view.rollback_id
                view.rolls_back = event.rollback_triggering_deployment_id or view.rolls_back
                view.rollback_message = event.message or view.rollback_message
            case ev.Note():
                view.notes.append(event.message)
            case ev.AlarmEvaluated():
                view.alarms[event.name] = replace(event, message=printable(event.message))
            case ev.TrafficShifted():
                view.target_weight = event.weight
                view.shifted = event
            case ev.TrafficMeasured():
                view.gauge = event
            case ev.InstanceTrafficChanged():
                before = view.traffic.get(event.instance)
                counted = before.requests_served if before is not None else None
                if event.requests_served is not None and event.requests_served > (counted or 0):
                    revision = running_revision(view, event.instance)
                    served = event.requests_served - (counted or 0)
                    view.served[revision] = view.served.get(revision, 0) + served
                view.traffic[event.instance] = replace(event, detail=printable(event.detail))
            case ev.ShiftProgressed():
                view.shift = event
            case ev.TaskSetsChanged():
                view.task_sets = event
            case ev.BlueGreenFleets():
                view.blue, view.green = event.blue, event.green
                view.traffic_on = "Blue"
            case ev.FleetWaitStarted():
                view.wait = event
            case ev.FleetWaitEnded():
                view.wait = None
                view.wait_ended = f"{event.wait_type} {event.how}"
            case ev.FleetTrafficMoved():
                view.traffic_on = event.traffic_on
        view.last_time = max(view.last_time or event.time, event.time)
        return view


class RunClock:
    """Where a time-scaled run's clock stands now, by the wall clock: it runs `time_scale`
    times faster, so run = wall x scale + offset. Every event seen bounds the offset from below
    (the run's clock had reached the event's time when the console saw it); the best bound so
    far is kept, so the time shown never jumps back. A resumed run (a new engine process, a
    new clock) starts over."""

    def __init__(self) -> None:
        self._epoch: float | None = None
        self._offset: float | None = None

    def now(self, view: DeploymentView, wall: float) -> float:
        scale = view.info.options.time_scale
        if scale == 1.0 or view.last_time is None:
            return wall
        seen = view.last_time - wall * scale
        if self._offset is None or self._epoch != view.clock_origin:
            self._epoch, self._offset = view.clock_origin, seen
        else:
            self._offset = max(self._offset, seen)
        return wall * scale + self._offset


def running_revision(view: DeploymentView, name: str) -> str:
    """The sha256 of the revision `name` runs as far as the run knows: the deployment's once
    its Install succeeded, else the one before ("" when there was none)."""
    instance = view.instances.get(name)
    install = instance.events.get("Install") if instance is not None else None
    if install is not None and install.status == Status.SUCCEEDED:
        return view.info.revision.sha256
    previous = view.info.previous_revision
    return previous.sha256 if previous is not None else ""


def _printable_diagnostics(diagnostics: Diagnostics | None) -> Diagnostics | None:
    """The evidence of a failure as it may be shown: hook output's control characters escaped."""
    if diagnostics is None:
        return None
    return replace(
        diagnostics,
        message=printable(diagnostics.message),
        log_tail=printable(diagnostics.log_tail),
        script_name=diagnostics.script_name and printable(diagnostics.script_name),
    )
