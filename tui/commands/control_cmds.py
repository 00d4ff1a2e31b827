"""Stop, resume and roll back a deployment; with --wait, follow it to its end. Hold, resume,
skip the wait of, or promote a running traffic shift (Lambda and ECS)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from rich.console import Console

from engine.api import Engine
from engine.events import ShiftAction
from tui.commands.create_cmds import follow
from tui.commands.read_cmds import shift_json
from tui.render.plain import shift_line


def stop_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    status = asyncio.run(engine.stop_deployment(args.deployment_id, args.auto_rollback))
    if args.output == "json" and not args.wait:
        print(
            json.dumps(
                {"status": status, "statusMessage": f"stop of {args.deployment_id} {status}"}
            )
        )
        return 0
    if not args.wait:
        console.print(f"stop of {args.deployment_id}: {status}")
        return 0
    follow(engine, console, args.deployment_id, args.output)
    return 0


def resume_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    asyncio.run(engine.resume_deployment(args.deployment_id))
    if args.wait:
        return follow(engine, console, args.deployment_id, args.output)
    console.print(f"resuming {args.deployment_id}")
    return 0


def rollback_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    rollback = asyncio.run(engine.rollback(args.deployment_id))
    target = rollback.id if rollback is not None else args.deployment_id
    if rollback is None:
        console.print(f"stopping {args.deployment_id} and rolling it back")
    elif args.output == "json" and not args.wait:
        print(json.dumps({"deploymentId": rollback.id}))
    else:
        console.print(f"{rollback.id} rolls back {args.deployment_id}")
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
