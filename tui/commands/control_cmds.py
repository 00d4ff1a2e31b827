"""Stop, continue, resume and roll back a deployment; with --wait, follow it to its end. Hold,
resume, skip the wait of, or promote a running traffic shift (Lambda and ECS)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from engine.api import Engine
from engine.events import ShiftAction
from engine.model import ROLLBACK_ON_STOP
from tui.commands.follow import follow
from tui.commands.report import shift_json
from tui.render.plain import shift_line
from tui.render.state import DeploymentView, FleetState
from tui.render.stop_traffic import rollback_paragraph, stop_paragraph


def stop_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    # what runs where as the stop comes, read once the stop is asked for (sooner for it)
    position = engine.journal_position()
    status = asyncio.run(engine.stop_deployment(args.deployment_id, args.auto_rollback))
    view = folded(engine, args.deployment_id, until=position)
    rollback = args.auto_rollback
    if rollback is None:
        rollback = view is not None and view.info.options.auto_rollback.on(ROLLBACK_ON_STOP)
    traffic = stop_paragraph(view, rollback=rollback) if view is not None else ""
    if args.output == "json" and not args.wait:
        answer = {"status": status, "statusMessage": f"stop of {args.deployment_id} {status}"}
        if traffic:
            answer["trafficMessage"] = traffic
        print(json.dumps(answer))
        return 0
    if not args.wait:
        console.print(f"stop of {args.deployment_id}: {status}")
    if traffic and args.output != "json":
        console.print(escape(traffic))
    if not args.wait:
        return 0
    follow(engine, console, args.deployment_id, args.output)
    return 0


def continue_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    asyncio.run(engine.continue_deployment(args.deployment_id, args.deployment_wait_type))
    if args.output == "json" and not args.wait:
        print(
            json.dumps({"deploymentId": args.deployment_id, "continued": args.deployment_wait_type})
        )
        return 0
    if not args.wait:
        console.print(f"{args.deployment_id}: {args.deployment_wait_type} continued")
        return 0
    return follow(engine, console, args.deployment_id, args.output)


def resume_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    asyncio.run(engine.resume_deployment(args.deployment_id))
    if args.wait:
        return follow(engine, console, args.deployment_id, args.output)
    console.print(f"resuming {args.deployment_id}")
    return 0


def rollback_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    view = folded(engine, args.deployment_id)
    rollback = asyncio.run(engine.rollback(args.deployment_id))
    target = rollback.id if rollback is not None else args.deployment_id
    if rollback is None:
        console.print(f"stopping {args.deployment_id} and rolling it back")
        traffic = stop_paragraph(view, rollback=True) if view is not None else ""
    else:
        traffic = rollback_paragraph(view) if view is not None else ""
    if rollback is not None and args.output == "json" and not args.wait:
        answer = {"deploymentId": rollback.id}
        if traffic:
            answer["trafficMessage"] = traffic
        print(json.dumps(answer))
    elif rollback is not None:
        console.print(f"{rollback.id} rolls back {args.deployment_id}")
    if traffic and args.output != "json":
        console.print(escape(traffic))
    if args.wait:
        return follow(engine, console, target, args.output, judge_rollback=rollback is None)
    return 0


# The traffic-shift verbs: name, action, help.
def shift_cmd(action: ShiftAction) -> Callable[[argparse.Namespace, Engine, Console], int]:
    """The command that asks the deployment's runner for `action` and prints its answer."""

    def run(args: argparse.Namespace, engine: Engine, console: Console) -> int:
        answer = asyncio.run(engine.control_traffic_shift(args.deployment_id, action))
        if args.output == "json":
            shift = shift_json(answer) if answer is not None else None
            print(json.dumps({"action": str(action), "trafficShift": shift}))
        else:
            said = shift_line(answer) if answer is not None else f"{action} requested; no answer"
            console.print(f"{args.deployment_id}: {said}")
        return 0

    return run


hold_shift_cmd = shift_cmd(ShiftAction.HOLD)
resume_shift_cmd = shift_cmd(ShiftAction.RESUME)
skip_shift_cmd = shift_cmd(ShiftAction.SKIP)
promote_shift_cmd = shift_cmd(ShiftAction.PROMOTE)


def folded(engine: Engine, deployment_id: str, until: int | None = None) -> DeploymentView | None:
    """The deployment as the console would show it now (or at journal position `until`),
    from its journal (None if unknown: the command itself then says so)."""
    state = FleetState()
    for entry in engine.journal(deployment_id):
        if until is not None and entry.seq > until:
            break
        state.apply(entry.event)
    return state.deployments.get(deployment_id)
