"""The headless CLI, mirroring `aws deploy`: its commands and how each runs.

Every command takes `--workspace` (default: deploydeck.yml here) and `--output text|json`.
A waited deployment's exit status is 0 only when it Succeeded. The commands themselves live
by what they do: create_cmds (plan, create, register), follow (what `--wait` shows), read_cmds
(get, list, journal) and control_cmds (stop, continue, resume, roll back).
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.commands.service_cmds import task_definition_arguments

if TYPE_CHECKING:  # the engine is imported only when a command runs, not to parse its line
    from rich.console import Console

    from engine.api import Engine
    from engine.deployments.runner_slot import RunnerSlot

Handler = Callable[[argparse.Namespace, "Engine", "Console"], int]


# The traffic-shift verbs: name, handler (control_cmds), help.
SHIFT_VERBS: tuple[tuple[str, str, str], ...] = (
    (
        "hold-traffic-shift",
        "control_cmds.hold_shift_cmd",
        "hold a running traffic shift: the weight stays where it is and the countdown to the "
        "next step pauses until resume-traffic-shift",
    ),
    (
        "resume-traffic-shift",
        "control_cmds.resume_shift_cmd",
        "resume a held traffic shift: the countdown goes on from where it paused",
    ),
    (
        "skip-traffic-wait",
        "control_cmds.skip_shift_cmd",
        "end the current wait of a traffic shift: its next step happens now",
    ),
    (
        "promote-traffic-shift",
        "control_cmds.promote_shift_cmd",
        "send all traffic to the new version now, skipping the rest of the shift's schedule "
        "(beyond CodeDeploy, which cannot)",
    ),
)


def add_parsers(commands: Any) -> None:
    def command(name: str, help_text: str, handler: str) -> argparse.ArgumentParser:
        """A command whose `handler` ("module.function" in tui.commands) runs it."""
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "-w",
            "--workspace",
            type=Path,
            default=argparse.SUPPRESS,  # keeps `deploydeck -w PATH COMMAND`'s value
            metavar="PATH",
            help="the workspace file or its folder (default: ./deploydeck.yml)",
        )
        parser.add_argument("--output", choices=("text", "json"), default="text")
        parser.set_defaults(run=lambda args: _run(args, handler))
        return parser

    def deployment_target(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--application-name", required=True, metavar="APP")
        parser.add_argument("--deployment-group-name", required=True, metavar="GROUP")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--revision", type=Path, metavar="PATH", help="a revision folder or tar/tgz/zip archive"
        )
        source.add_argument(
            "--registered-revision",
            metavar="SHA256",
            help="a registered revision by its sha256 (a unique prefix will do)",
        )
        parser.add_argument("--bundle-type", choices=("directory", "tar", "tgz", "zip"))
        parser.add_argument(
            "--deployment-config-name",
            metavar="CONFIG",
            help="default: the group's, else CodeDeployDefault.OneAtATime",
        )
        parser.add_argument("--file-exists-behavior", choices=("DISALLOW", "OVERWRITE", "RETAIN"))
        parser.add_argument("--ignore-application-stop-failures", action="store_true", default=None)
        parser.add_argument("--update-outdated-instances-only", action="store_true")

    plan = command(
        "plan",
        "show the batches a deployment would run, before anything runs",
        "create_cmds.plan_cmd",
    )
    deployment_target(plan)

    create = command(
        "create-deployment", "deploy a revision to a deployment group", "create_cmds.create_cmd"
    )
    deployment_target(create)
    create.add_argument("--description", default="")
    create.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="N",
        help="run waits and intervals N times faster (60: a minute takes a second)",
    )
    create.add_argument(
        "--ignore-alarms",
        action="store_true",
        help="ignore the group's alarms for this deployment (overrideAlarmConfiguration "
        "enabled: false), e.g. to redeploy a good revision while an alarm still fires",
    )
    create.add_argument(
        "--ignore-poll-alarm-failure",
        action="store_true",
        help="go on when an alarm cannot be evaluated (overrideAlarmConfiguration "
        "ignorePollAlarmFailure: true)",
    )
    create.add_argument(
        "--auto-rollback",
        choices=("on-failure", "on-failure-and-stop", "off"),
        help="override the group's automatic rollback",
    )
    create.add_argument(
        "--wait",
        action="store_true",
        help="follow the deployment to its end; exit 0 only if it succeeded",
    )

    get = command(
        "get-deployment",
        "a deployment with every instance and lifecycle event",
        "read_cmds.get_cmd",
    )
    get.add_argument("--deployment-id", required=True)

    listing = command("list-deployments", "deployments, newest first", "read_cmds.list_cmd")
    listing.add_argument("--application-name")
    listing.add_argument("--deployment-group-name")
    listing.add_argument("--include-only-statuses", nargs="+", default=(), metavar="STATUS")
    listing.add_argument("--limit", type=int, default=50)

    stop = command(
        "stop-deployment", "stop a running deployment; its hooks are ended", "control_cmds.stop_cmd"
    )
    stop.add_argument("--deployment-id", required=True)
    rollback_flag = stop.add_mutually_exclusive_group()
    rollback_flag.add_argument(
        "--auto-rollback-enabled",
        dest="auto_rollback",
        action="store_true",
        default=None,
        help="roll the changed instances back to the previous revision",
    )
    rollback_flag.add_argument(
        "--no-auto-rollback-enabled",
        dest="auto_rollback",
        action="store_false",
        help="do not roll back, whatever the group says",
    )
    stop.add_argument("--wait", action="store_true")

    proceed = command(
        "continue-deployment",
        "end a blue/green deployment's wait: move traffic now (READY_WAIT) or end blue now "
        "(TERMINATION_WAIT)",
        "control_cmds.continue_cmd",
    )
    proceed.add_argument("--deployment-id", required=True)
    proceed.add_argument(
        "--deployment-wait-type",
        choices=("READY_WAIT", "TERMINATION_WAIT"),
        default="READY_WAIT",
    )
    proceed.add_argument("--wait", action="store_true")

    resume = command(
        "resume-deployment",
        "carry on a deployment whose engine process died",
        "control_cmds.resume_cmd",
    )
    resume.add_argument("--deployment-id", required=True)
    resume.add_argument("--wait", action="store_true")

    for name, handler, help_text in SHIFT_VERBS:
        command(name, help_text, handler).add_argument("--deployment-id", required=True)

    rollback = command(
        "rollback",
        "roll a deployment back: stop and roll back a running one, "
        "or redeploy the revision before a finished one",
        "control_cmds.rollback_cmd",
    )
    rollback.add_argument("--deployment-id", required=True)
    rollback.add_argument("--wait", action="store_true")

    register = command(
        "register-revision",
        "record a revision (checked and snapshotted)",
        "create_cmds.register_cmd",
    )
    register.add_argument("--application-name", required=True)
    register.add_argument("--revision", type=Path, required=True, metavar="PATH")
    register.add_argument("--bundle-type", choices=("directory", "tar", "tgz", "zip"))
    register.add_argument("--description", default="")

    task_definition = command(
        "register-task-definition",
        "register the next revision of an ECS task definition (what a service's tasks run)",
        "service_cmds.register_task_definition_cmd",
    )
    task_definition_arguments(task_definition)

    revisions = command("list-revisions", "registered revisions", "read_cmds.revisions_cmd")
    revisions.add_argument("--application-name")

    journal = command(
        "journal", "replay a deployment from its journal, event by event", "read_cmds.journal_cmd"
    )
    journal.add_argument("--deployment-id", required=True)
    journal.add_argument("--show-output", action="store_true", help="include hook output lines")


# Commands that start a runner fork it first thing, so that it imports the engine while the
# command does (engine/deployments/runner_slot.py).
STARTS_RUNNER = frozenset({"create_cmds.create_cmd"})


def _run(args: argparse.Namespace, handler_name: str) -> int:
    from engine.deployments.runner_slot import RunnerSlot, take_started

    # the slot tui/cli.py forked before it parsed the command line, else one forked now
    slot = (take_started() or RunnerSlot.fork()) if handler_name in STARTS_RUNNER else None
    try:
        return _run_with(args, handler_name, slot)
    finally:
        if slot is not None:
            slot.release()  # none taken: the command ended before creating a deployment


def _run_with(args: argparse.Namespace, handler_name: str, slot: RunnerSlot | None) -> int:
    from engine.api import Engine, EngineError, StoreError
    from engine.workspace import WorkspaceError, find_workspace, load_workspace
    from tui.commands.output import lazy_console, print_diagnostics

    module, name = handler_name.rsplit(".", 1)
    handler: Handler = getattr(importlib.import_module(f"tui.commands.{module}"), name)
    # With --output json, stdout holds the JSON document only; everything for people
    # (warnings, progress, notes) goes to stderr. Rich is imported once something is printed.
    console = lazy_console(highlight=False, soft_wrap=True, stderr=args.output == "json")
    try:
        path = find_workspace(Path.cwd(), args.workspace)
        result = load_workspace(path)
    except WorkspaceError as error:
        from rich.markup import escape

        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    print_diagnostics(console, result.diagnostics)
    if not result.ok or result.workspace is None:  # ok means a workspace and no errors
        console.print(f"[red]ERROR:[/] {path} has errors; fix them and run again")
        return 1
    given = getattr(args, "workspace", None)
    try:
        engine = Engine(
            result.workspace,
            workspace_argument=str(given) if given else None,
            runner_slot=slot,
        )
    except StoreError as error:
        return _refused(args, console, error)
    try:
        _warn_orphans(engine, args)
        return handler(args, engine, console)
    except (EngineError, StoreError) as error:
        return _refused(args, console, error)
    finally:
        engine.close()


def _refused(args: argparse.Namespace, console: Console, error: Exception) -> int:
    from rich.markup import escape

    from tui.commands.output import print_diagnostics

    if args.output == "json":
        print(json.dumps({"error": str(error)}))
    else:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        print_diagnostics(console, getattr(error, "diagnostics", ()))
    return 1


def _warn_orphans(engine: Engine, args: argparse.Namespace) -> None:
    orphans = [o for o in engine.orphans() if getattr(args, "deployment_id", None) != o.id]
    if not orphans:
        return
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for orphan in orphans:
        err.print(f"[yellow]warning:[/] {escape(engine.interrupted_message(orphan))}")


__all__ = ["add_parsers"]
