"""What a command reports of a deployment, without Rich: its JSON (CodeDeploy's shapes) and
the summary `--wait` and get-deployment end with, as lines of styled pieces that a terminal
gets through Rich and any other output as plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.api import Engine
from engine.host.results import UNKNOWN_ERROR
from engine.model import DeploymentInfo, Status, instance_to_api
from tui.render.glyphs import status_piece
from tui.render.plain import production_actual
from tui.render.terminal_text import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

Piece = tuple[str, str]  # text, and the Rich style to show it in ("" for none)
Line = list[Piece]


def deployment_json(engine: Engine, deployment: DeploymentInfo) -> dict[str, Any]:
    connections = connection_states(engine, deployment.id)
    instances = []
    for instance in deployment.instances:
        shown = instance_to_api(deployment.id, instance)
        if instance.name in connections:
            shown["connection"] = connections[instance.name]
        instances.append(shown)
    info = deployment.to_api()
    weight = engine.target_version_weight(deployment.id)
    if weight is not None:
        info["targetVersionWeight"] = weight
    shift = engine.traffic_shift(deployment.id)
    if shift is not None:
        info["trafficShift"] = shift_json(shift)
    gauge = engine.traffic_gauge(deployment.id)
    if gauge is not None:
        info["trafficGauge"] = {
            "setWeight": gauge.set_weight,
            "actualWeight": gauge.actual_weight,
            "measuredCalls": gauge.calls,
            "step": gauge.step,
            "steps": gauge.steps,
        }
    service = engine.task_sets(deployment.id)
    if service is not None:
        info["ecsTarget"] = task_sets_json(service)
        actual = production_actual(gauge, service)
        for shown, task_set in zip(
            info["ecsTarget"]["taskSetsInfo"], service.task_sets, strict=True
        ):
            if task_set.target_group in actual:  # measured on production, in percent
                shown["actualTrafficWeight"] = round(actual[task_set.target_group] * 100, 2)
    return {"deploymentInfo": info, "instances": instances}


def task_sets_json(service: ev.TaskSetsChanged) -> dict[str, Any]:
    """An ECS deployment's service as CodeDeploy's ECSTarget shows it (taskSetsInfo), with the
    listeners' addresses."""
    return {
        "targetId": service.service,
        "productionListener": service.production,
        "testListener": service.test,
        "taskSetsInfo": [
            {
                "identifer": t.identifier,  # CodeDeploy's own spelling
                "taskSetLabel": t.label,
                "status": t.status,
                "taskDefinition": t.task_definition,
                "targetGroup": {"name": t.target_group},
                "desiredCount": t.desired_count,
                "pendingCount": t.pending_count,
                "runningCount": t.running_count,
                "trafficWeight": t.traffic_weight,
                "testTrafficWeight": t.test_traffic_weight,
            }
            for t in service.task_sets
        ],
    }


def shift_json(progress: ev.ShiftProgressed) -> dict[str, Any]:
    """A traffic shift's progress: state, step N of M, the target's weight, the countdown
    (seconds on the deployment's clock, from when it was journaled)."""
    return {
        "state": progress.state,
        "step": progress.step,
        "steps": progress.steps,
        "targetWeight": progress.weight,
        "nextStepInSeconds": progress.remaining,
    }


def connection_states(engine: Engine, deployment_id: str) -> dict[str, str]:
    """Each SSH instance's last connection state in the deployment (connected, closed, ...)."""
    return engine.connection_states(deployment_id)


# ---- the summary ----------------------------------------------------------------------------


def deployment_status_pieces(d: DeploymentInfo) -> Line:
    """The status, with `(interrupted)` once the engine process running it is gone."""
    shown = [status_piece(d.status)]
    if d.interrupted:
        shown.append((" (interrupted)", "bold yellow"))
    return shown


def failure_lines(deployment: DeploymentInfo, tail: int = 5) -> list[Line]:
    """Each failed instance: its failed event and code, the message, its log's last lines."""
    lines: list[Line] = []
    for instance in deployment.instances:
        failed = instance.failed_event()
        if failed is None or failed.diagnostics is None:
            continue
        d = failed.diagnostics
        exit_code = f", exit code {d.exit_code}" if d.exit_code is not None else ""
        # An event ended by a stop has CodeDeploy's catch-all UnknownError; the cause is the
        # deployment's own code (MANUAL_STOP, ALARM_ACTIVE).
        code = d.error_code
        if deployment.status == Status.STOPPED and code == UNKNOWN_ERROR and deployment.error_code:
            code = f"ended by the stop ({deployment.error_code})"
        script = f" in {d.script_name}" if d.script_name else ""
        lines.append(
            [
                ("  ", ""),
                (f"✖ {instance.name}", "red"),
                (f" {failed.name}: {code}{exit_code}{script}", ""),
            ]
        )
        lines.append([(f"      {d.message}", "")])
        for line in d.log_tail.splitlines()[-tail:]:
            lines.append([("      ", ""), (printable(line), "dim")])
    return lines


def summary_lines(engine: Engine, final: DeploymentInfo) -> list[Line]:
    """How a followed deployment ended: status, failures, and its rollback."""
    error = (
        f" [{final.error_code}] {final.error_message}"
        if final.error_code
        else f" {final.error_message or ''}"
    )
    lines = [
        [
            *deployment_status_pieces(final),
            (f"  {final.id} {final.application}/{final.deployment_group}{error}", ""),
        ]
    ]
    lines += failure_lines(final)
    if final.rollback.rollback_deployment_id:
        rollback = engine.get_deployment(final.rollback.rollback_deployment_id)
        lines.append(
            [
                (f"  rollback {rollback.id} (revision {rollback.revision.short()}): ", ""),
                status_piece(rollback.status),
            ]
        )
    elif final.rollback.rollback_message:
        lines.append([(f"  rollback: {final.rollback.rollback_message}", "")])
    return lines


def rich_line(line: Line) -> Text:
    from rich.text import Text

    return Text.assemble(*line)


def print_lines(console: Console, lines: list[Line]) -> None:
    """The lines through Rich (a terminal: styled)."""
    for line in lines:
        console.print(rich_line(line))


def plain_text(lines: list[Line]) -> str:
    """The lines as plain text, one per line."""
    return "".join("".join(text for text, _ in line) + "\n" for line in lines)
