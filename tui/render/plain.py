"""Plain lines, one per engine event worth a line: for logs, CI and pipes."""

from __future__ import annotations

import time
from collections.abc import Callable

from engine import events as ev
from engine.model import Status, TrafficState
from tui.render.terminal_text import printable

Write = Callable[[str], None]


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


def time_scaled(scale: float) -> str:
    """What a deployment's time scale adds to where its times are shown ("" at real time)."""
    return "" if scale == 1.0 else f" (time x{scale:g}: a minute takes {60 / scale:g} s)"


class PlainRenderer:
    """Turns journal events into text lines; hook output only when `show_output`."""

    # The events that get a line, and those that do not; every event class is in one of the
    # two (tests/architecture/test_event_coverage.py).
    JOURNAL_ONLY: frozenset[type[ev.Event]] = frozenset(
        {ev.LifecycleEventStarted, ev.ScriptStarted, ev.InstanceRevisionChanged}
    )
    HANDLED: frozenset[type[ev.Event]] = frozenset(
        {
            ev.DeploymentCreated,
            ev.InstancesTargeted,
            ev.DeploymentStatusChanged,
            ev.BatchStarted,
            ev.InstanceStatusChanged,
            ev.LifecycleEventFinished,
            ev.HookOutput,
            ev.RollbackLinked,
            ev.InstanceConnection,
            ev.StopRequested,
            ev.Note,
            ev.EngineAttached,
            ev.AlarmEvaluated,
            ev.TrafficShifted,
            ev.TrafficMeasured,
            ev.InstanceTrafficChanged,
            ev.ShiftControlRequested,
            ev.ShiftProgressed,
            ev.TaskSetsChanged,
            ev.BlueGreenFleets,
            ev.FleetWaitStarted,
            ev.FleetWaitEnded,
            ev.ContinueRequested,
            ev.FleetTrafficMoved,
        }
    )

    def __init__(self, write: Write, *, show_output: bool = False) -> None:
        self.write = write
        self.show_output = show_output
        # Each alarm's last state, by (deployment, alarm): a line only when it changes.
        self._alarm_states: dict[tuple[str, str], str] = {}
        # Each deployment's last gauge line's key: a line only when the step, the set weight
        # or whether actual agrees with set changes.
        self._gauges: dict[str, tuple[object, ...]] = {}
        # Each instance's last balancer line, by (deployment, instance): a line when it changes.
        self._traffic_lines: dict[tuple[str, str], str] = {}

    def render(self, event: ev.Event) -> None:
        line = self.line(event)
        if line is not None:
            self.write(printable(f"{_clock(event.time)} {event.deployment_id} {line}"))

    def line(self, event: ev.Event) -> str | None:
        match event:
            case ev.DeploymentCreated(deployment=d):
                return (
                    f"created: {d.application}/{d.deployment_group}, revision {d.revision.short()} "
                    f"({d.revision.location}), {d.config_name}, by {d.creator}"
                ) + time_scaled(d.options.time_scale)
            case ev.InstancesTargeted(instances=names, minimum_healthy=minimum):
                return f"targets {len(names)} instance(s), minimum healthy {minimum}"
            case ev.DeploymentStatusChanged(status=status, error_code=code, message=message):
                detail = f" [{code}]" if code else ""
                return f"deployment {status}{detail}" + (f": {message}" if message else "")
            case ev.BatchStarted(batch=index, instances=names):
                return f"batch {index}: {', '.join(names)}"
            case ev.InstanceStatusChanged(instance=name, status=status):
                return f"{name}: {status}"
            case ev.LifecycleEventFinished(
                instance=name, event=lifecycle, status=status, diagnostics=diag, note=note
            ):
                if diag is not None:
                    exit_code = (
                        f", exit code {diag.exit_code}" if diag.exit_code is not None else ""
                    )
                    script = f" {diag.script_name}" if diag.script_name else ""
                    return (
                        f"{name}: {lifecycle} {status} {diag.error_code}{exit_code}{script}: "
                        f"{diag.message}"
                    )
                if status == Status.SKIPPED:
                    return None
                shown = note if note and lifecycle not in ("DownloadBundle", "Install") else ""
                return f"{name}: {lifecycle} {status}" + (f" ({shown})" if shown else "")
            case ev.HookOutput(instance=name, event=lifecycle, stream=stream, line=text) if (
                self.show_output
            ):
                return f"{name}: {lifecycle} [{stream}] {text.rstrip()}"
            case ev.RollbackLinked(
                rollback_deployment_id=rid, rollback_triggering_deployment_id=tid, message=message
            ):
                parts = []
                if rid:
                    parts.append(f"rolled back by {rid}")
                if tid:
                    parts.append(f"rolls back {tid}")
                if message:
                    parts.append(message)
                return "rollback: " + "; ".join(parts)
            case ev.InstanceConnection(instance=name, state=state, host=host, detail=detail):
                return f"{name}: ssh {host} {state}" + (f": {detail}" if detail else "")
            case ev.StopRequested(auto_rollback=rollback):
                return "stop requested" + (" with rollback" if rollback else "")
            case ev.Note(message=message, level=level, instance=name):
                return f"{level}: " + (f"{name}: " if name else "") + message
            case ev.AlarmEvaluated(name=name, state=state, message=message):
                key = (event.deployment_id, name)
                before = self._alarm_states.get(key, "OK")  # an alarm starts out quiet
                self._alarm_states[key] = state
                if state == before:
                    return None
                mode = " (observe-only)" if event.observe_only else ""
                return f"alarm {name}{mode}: {before} -> {state}: {message}"
            case ev.EngineAttached(pid=pid, resumed=resumed):
                return f"{'resumed' if resumed else 'running'} in engine process {pid}"
            case ev.TrafficShifted(
                function=name, alias=alias, original_version=old, target_version=new, weight=w
            ):
                return f"{name}:{alias}: {w:.0%} to version {new}, {1 - w:.0%} to version {old}"
            case ev.TrafficMeasured():
                gauge_key = (event.step, event.set_weight, gauge_agrees(event))
                if self._gauges.get(event.deployment_id) == gauge_key:
                    return None
                self._gauges[event.deployment_id] = gauge_key
                return gauge_line(event)
            case ev.InstanceTrafficChanged(instance=name):
                line = traffic_line(event)
                key = (event.deployment_id, name)
                if self._traffic_lines.get(key) == line:
                    return None  # only its request count moved
                self._traffic_lines[key] = line
                return f"{name}: {line}"
            case ev.ShiftControlRequested(action=action):
                return f"traffic shift: {action} requested"
            case ev.ShiftProgressed():
                return shift_line(event)
            case ev.TaskSetsChanged(service=name, task_sets=sets):
                return f"{name}: " + "; ".join(task_set_text(t) for t in sets)
            case ev.BlueGreenFleets(blue=blue, green=green, copied=copied):
                made = f" ({len(copied)} copied)" if copied else ""
                return f"blue fleet {', '.join(blue)}; green fleet {', '.join(green)}{made}"
            case ev.FleetWaitStarted(wait_type=wait, deadline=deadline, action=action):
                if deadline is None:
                    return f"{wait}: waiting for continue-deployment"
                return (
                    f"{wait}: until {_clock(deadline)} ({deadline - event.time:.0f} s), then "
                    f"{action}; continue-deployment --deployment-wait-type {wait} ends it now"
                )
            case ev.FleetWaitEnded(wait_type=wait, how=how):
                return f"{wait} ended: {how}"
            case ev.ContinueRequested(wait_type=wait):
                return f"continue requested: {wait}"
            case ev.FleetTrafficMoved(traffic_on=fleet):
                return f"traffic is on the {fleet.lower()} fleet"
        return None


AGREEMENT = 0.05  # actual weight within 5 points of set weight "agrees"


def gauge_agrees(gauge: ev.TrafficMeasured) -> bool | None:
    """Whether the measured share agrees with the set weight (None: nothing measured)."""
    if gauge.actual_weight is None:
        return None
    return abs(gauge.actual_weight - gauge.set_weight) <= AGREEMENT


def production_actual(
    gauge: ev.TrafficMeasured | None, service: ev.TaskSetsChanged | None
) -> dict[str, float]:
    """Each target group's measured share of an ECS service's recent production requests, from
    its last gauge when that was measured at the weights the task sets show now (else none:
    stale, or nothing measured)."""
    if gauge is None or service is None or gauge.actual_weight is None:
        return {}
    if gauge.function != service.service or gauge.alias != "production":
        return {}
    target = next((t for t in service.task_sets if t.target_group == gauge.target_version), None)
    if target is None or abs(target.traffic_weight / 100 - gauge.set_weight) > 0.005:
        return {}
    return {
        t.target_group: gauge.actual_weight
        if t is target
        else (1.0 - gauge.actual_weight if t.traffic_weight else 0.0)
        for t in service.task_sets
    }


def gauge_line(gauge: ev.TrafficMeasured) -> str:
    """The gauge in one line: step, set and actual weight on the target, the next shift."""
    actual = (
        f"actual {gauge.actual_weight:.0%} of the last {gauge.calls} call(s)"
        if gauge.actual_weight is not None
        else "actual unmeasured (no recent calls)"
    )
    due = (
        f", next shift in {max(0.0, gauge.next_shift_at - gauge.time):.0f} s"
        if gauge.next_shift_at is not None
        else ""
    )
    return (
        f"{gauge.function}:{gauge.alias}: step {gauge.step} of {gauge.steps}, version "
        f"{gauge.target_version} set {gauge.set_weight:.0%}, {actual}{due}"
    )


def traffic_line(event: ev.InstanceTrafficChanged) -> str:
    """An instance's balancer state in a few words: "draining, 3 open connections, health ok"."""
    state = str(event.state).replace("_", " ")
    if event.state == TrafficState.DRAINING and event.open_connections is not None:
        state += f", {event.open_connections} open connection" + (
            "" if event.open_connections == 1 else "s"
        )
    if event.state == TrafficState.OUT_OF_SERVICE:
        return state
    return f"{state}, health {event.health}"


def shift_line(event: ev.ShiftProgressed) -> str:
    """A traffic shift's progress in a line: step, weight, and the wait to the next step."""
    by = f" ({event.action})" if event.action else ""
    where = f"step {event.step} of {event.steps}, {event.weight:.0%} on the target"
    wait = f"{event.remaining or 0:.0f} s"
    if event.state == ev.ShiftState.HELD:
        return f"traffic shift held{by}: {where}; next step {wait} after resume"
    if event.state == ev.ShiftState.SHIFTING:
        return f"traffic shift{by}: {where}; next step in {wait}"
    return f"traffic shift {event.state}{by}: {where}"


def task_set_text(task_set: ev.TaskSetView) -> str:
    """An ECS task set in a few words: label, status, definition, counts, weights."""
    t = task_set
    return (
        f"{t.label} {t.status} {t.task_definition} on {t.target_group}: "
        f"{t.running_count}/{t.desired_count} running, {t.pending_count} pending, "
        f"{t.traffic_weight:g}% of production, {t.test_traffic_weight:g}% of test"
    )
