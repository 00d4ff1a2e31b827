"""Plan, create and register a revision; a created deployment is followed by follow.py."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from engine.api import CreateDeploymentRequest, Engine, PlanPreview
from engine.model import AutoRollback
from tui.commands.output import print_diagnostics

if TYPE_CHECKING:  # Rich is imported where output is printed: create hands over first
    from rich.console import Console


def _request(args: argparse.Namespace) -> CreateDeploymentRequest:
    auto = {
        None: None,
        "off": AutoRollback(False, ()),
        "on-failure": AutoRollback(True, ("DEPLOYMENT_FAILURE",)),
        "on-failure-and-stop": AutoRollback(
            True, ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST")
        ),
    }[getattr(args, "auto_rollback", None)]
    return CreateDeploymentRequest(
        application=args.application_name,
        deployment_group=args.deployment_group_name,
        revision_path=args.revision,
        bundle_type=args.bundle_type,
        registered_sha256=args.registered_revision,
        config_name=args.deployment_config_name,
        description=getattr(args, "description", ""),
        file_exists_behavior=args.file_exists_behavior,
        ignore_application_stop_failures=args.ignore_application_stop_failures,
        update_outdated_instances_only=args.update_outdated_instances_only,
        auto_rollback=auto,
        alarms_enabled=False if getattr(args, "ignore_alarms", False) else None,
        ignore_poll_alarm_failure=True
        if getattr(args, "ignore_poll_alarm_failure", False)
        else None,
        time_scale=getattr(args, "time_scale", 1.0),
    )


# ---- plan ----------------------------------------------------------------------------------


def plan_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    preview = engine.preview(_request(args))
    if args.output == "json":
        print(json.dumps(plan_json(preview), indent=2))
        return 0 if preview.plan.start_problem is None else 1
    print_diagnostics(console, preview.warnings)
    print_plan(console, preview)
    return 0 if preview.plan.start_problem is None else 1


def plan_json(preview: PlanPreview) -> dict[str, Any]:
    plan = preview.plan
    return {
        "deploymentConfigName": plan.config.name,
        "revision": {"sha256": preview.revision.sha256, "location": preview.revision.location},
        "instances": len(plan.instances),
        "minimumHealthyHosts": plan.minimum,
        "maxConcurrent": plan.max_concurrent,
        "toleratedFailures": plan.tolerated_failures,
        "batches": [list(b) for b in plan.batches],
        "failureRules": plan.failure_rules(),
        "startProblem": None
        if plan.start_problem is None
        else {"errorCode": plan.start_problem.error_code, "message": plan.start_problem.message},
        "autoRollback": {
            "enabled": preview.options.auto_rollback.enabled,
            "events": list(preview.options.auto_rollback.events),
        },
        "rollbackRevision": preview.previous_revision.sha256 if preview.previous_revision else None,
    }


def print_plan(console: Console, preview: PlanPreview) -> None:
    from rich.markup import escape

    plan = preview.plan
    group = preview.deployment_group
    console.print(
        f"[bold]{group.application}/{group.name}[/] · {plan.config.name} · revision "
        f"{preview.revision.short()} ({escape(preview.revision.location)})"
    )
    if plan.start_problem is not None:
        console.print(
            f"[red]✖ Cannot start: {plan.start_problem.error_code}: "
            f"{escape(plan.start_problem.message)}[/]"
        )
        return
    console.print(
        f"{len(plan.instances)} instance(s); at least {plan.minimum} must stay healthy; at most "
        f"{plan.max_concurrent} down at once; {plan.failures_allowed()}"
    )
    for index, batch in enumerate(plan.batches, 1):
        hosts = ", ".join(batch)
        console.print(f"  batch {index} ({len(batch)}): {escape(hosts)}")
    for rule in plan.failure_rules():
        console.print(f"  • {escape(rule)}")
    rollback = preview.options.auto_rollback
    if rollback.enabled:
        target = preview.previous_revision.short() if preview.previous_revision else None
        events = ", ".join(rollback.events)
        what = (
            f"roll back to revision {target}"
            if target
            else "find no earlier revision to roll back to (this would be the first)"
        )
        console.print(f"  • on {events}: automatic rollback would {what}")
    else:
        console.print("  • automatic rollback is off: a failure leaves instances as they are")


# ---- create and follow ---------------------------------------------------------------------


def create_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    # in this thread, with no event loop: the runner has its deployment before this process
    # imports asyncio (or Rich) to follow it
    deployment = engine.create_deployment_now(_request(args))
    if not args.wait:
        if args.output == "json":
            print(json.dumps({"deploymentId": deployment.id}))
        else:
            console.print(f"{deployment.id}")
        return 0
    from tui.commands.follow import follow

    return follow(engine, console, deployment.id, args.output)


def register_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    from rich.markup import escape

    ref = engine.register_revision(
        args.application_name, args.revision, args.bundle_type, args.description
    )
    if args.output == "json":
        print(
            json.dumps(
                {"sha256": ref.sha256, "location": ref.location, "bundleType": ref.bundle_type}
            )
        )
    else:
        console.print(f"registered {ref.sha256} ({ref.bundle_type}, {escape(ref.location)})")
    return 0


__all__ = ["plan_json", "print_plan"]
