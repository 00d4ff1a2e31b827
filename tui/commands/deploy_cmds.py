"""The headless CLI, mirroring `aws deploy`: plan, create, watch, stop, roll back, list, get.

Every command takes `--workspace` (default: deploydeck.yml here) and `--output text|json`.
A waited deployment's exit status is 0 only when it Succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, EngineError, PlanPreview
from engine.host.results import UNKNOWN_ERROR
from engine.model import STOPPED, SUCCEEDED, AutoRollback, DeploymentInfo, instance_to_api
from engine.store import StoreError
from engine.workspace import WorkspaceError, find_workspace, load_workspace
from tui.commands.output import print_diagnostics
from tui.render.live import render_deployment, status_text
from tui.render.plain import PlainRenderer, time_scaled
from tui.render.state import FleetState
from tui.render.terminal_text import printable

Handler = Callable[[argparse.Namespace, Engine, Console], int]


def add_parsers(commands: Any) -> None:
    def command(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
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

    plan = command("plan", "show the batches a deployment would run, before anything runs", _plan)
    deployment_target(plan)

    create = command("create-deployment", "deploy a revision to a deployment group", _create)
    deployment_target(create)
    create.add_argument("--description", default="")
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
        "--time-scale",
        type=float,
        default=1.0,
        metavar="N",
        help="run waits and intervals N times faster (60: a minute takes a second)",
    )
    create.add_argument(
        "--wait",
        action="store_true",
        help="follow the deployment to its end; exit 0 only if it succeeded",
    )

    get = command("get-deployment", "a deployment with every instance and lifecycle event", _get)
    get.add_argument("--deployment-id", required=True)

    listing = command("list-deployments", "deployments, newest first", _list)
    listing.add_argument("--application-name")
    listing.add_argument("--deployment-group-name")
    listing.add_argument("--include-only-statuses", nargs="+", default=(), metavar="STATUS")
    listing.add_argument("--limit", type=int, default=50)

    stop = command("stop-deployment", "stop a running deployment; its hooks are ended", _stop)
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

    resume = command(
        "resume-deployment", "carry on a deployment whose engine process died", _resume
    )
    resume.add_argument("--deployment-id", required=True)
    resume.add_argument("--wait", action="store_true")

    rollback = command(
        "rollback",
        "roll a deployment back: stop and roll back a running one, "
        "or redeploy the revision before a finished one",
        _rollback,
    )
    rollback.add_argument("--deployment-id", required=True)
    rollback.add_argument("--wait", action="store_true")

    register = command(
        "register-revision", "record a revision (checked and snapshotted)", _register
    )
    register.add_argument("--application-name", required=True)
    register.add_argument("--revision", type=Path, required=True, metavar="PATH")
    register.add_argument("--bundle-type", choices=("directory", "tar", "tgz", "zip"))
    register.add_argument("--description", default="")

    revisions = command("list-revisions", "registered revisions", _revisions)
    revisions.add_argument("--application-name")

    journal = command("journal", "replay a deployment from its journal, event by event", _journal)
    journal.add_argument("--deployment-id", required=True)
    journal.add_argument("--show-output", action="store_true", help="include hook output lines")


def _run(args: argparse.Namespace, handler: Handler) -> int:
    # With --output json, stdout holds the JSON document only; everything for people
    # (warnings, progress, notes) goes to stderr.
    console = Console(highlight=False, soft_wrap=True, stderr=args.output == "json")
    try:
        path = find_workspace(Path.cwd(), args.workspace)
        result = load_workspace(path)
    except WorkspaceError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    print_diagnostics(console, result.diagnostics)
    if not result.ok or result.workspace is None:  # ok means a workspace and no errors
        console.print(f"[red]ERROR:[/] {path} has errors; fix them and run again")
        return 1
    given = getattr(args, "workspace", None)
    try:
        engine = Engine(result.workspace, workspace_argument=str(given) if given else None)
    except StoreError as error:
        return _refused(args, console, error)
    try:
        _warn_orphans(engine, args)
        return handler(args, engine, console)
    except (EngineError, StoreError) as error:
        return _refused(args, console, error)
    finally:
        engine.store.close()


def _refused(args: argparse.Namespace, console: Console, error: Exception) -> int:
    if args.output == "json":
        print(json.dumps({"error": str(error)}))
    else:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        print_diagnostics(console, getattr(error, "diagnostics", ()))
    return 1


def _warn_orphans(engine: Engine, args: argparse.Namespace) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for orphan in engine.orphans():
        if getattr(args, "deployment_id", None) == orphan.id:
            continue
        err.print(f"[yellow]warning:[/] {escape(engine.interrupted_message(orphan))}")


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


def _plan(args: argparse.Namespace, engine: Engine, console: Console) -> int:
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


def _create(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    deployment = asyncio.run(engine.create_deployment(_request(args)))
    if not args.wait:
        if args.output == "json":
            print(json.dumps({"deploymentId": deployment.id}))
        else:
            console.print(f"{deployment.id}")
        return 0
    return follow(engine, console, deployment.id, args.output)


def follow(
    engine: Engine,
    console: Console,
    deployment_id: str,
    output: str,
    *,
    judge_rollback: bool = False,
) -> int:
    """Follow a deployment and any rollback it starts; 0 only if it succeeded, or with
    `judge_rollback` (a stop-and-roll-back asked for) only if the rollback it started did."""
    final = asyncio.run(_follow(engine, console, deployment_id, output))
    stalled = _stalled(engine, final)
    if output == "json":
        print(json.dumps(_deployment_json(engine, final), indent=2))
    else:
        _print_summary(console, engine, final)
    if stalled is not None:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[red]ERROR:[/] {escape(engine.interrupted_message(stalled))}")
        return 1
    if judge_rollback:
        rollback_id = final.rollback.rollback_deployment_id
        return 0 if rollback_id and engine.get_deployment(rollback_id).status == SUCCEEDED else 1
    return 0 if final.status == SUCCEEDED else 1


def _stalled(engine: Engine, final: DeploymentInfo) -> DeploymentInfo | None:
    """The followed deployment, or the rollback it started, left unfinished by a dead engine."""
    shown = [final]
    if final.rollback.rollback_deployment_id:
        shown.append(engine.get_deployment(final.rollback.rollback_deployment_id))
    return next((d for d in shown if d.interrupted), None)


async def _follow(
    engine: Engine, console: Console, deployment_id: str, output: str
) -> DeploymentInfo:
    state = FleetState()
    watched = {deployment_id}
    plain = PlainRenderer(lambda line: console.print(escape(line)), show_output=False)
    live_mode = output == "text" and console.is_terminal
    live = Live(console=console, refresh_per_second=4, transient=False) if live_mode else None
    stop_sent = False
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    import signal

    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    gone = asyncio.Event()
    watching = asyncio.create_task(_watch_runners(engine, state, watched, gone))
    last_seq = 0
    last_draw = 0.0

    def take(entry: ev.JournalEntry) -> bool:
        """Show one journal entry; True once every watched deployment is done."""
        nonlocal last_seq, last_draw
        last_seq = entry.seq
        event = entry.event
        if (
            isinstance(event, ev.RollbackLinked)
            and event.deployment_id in watched
            and event.rollback_deployment_id
        ):
            watched.add(event.rollback_deployment_id)
        if (
            isinstance(event, ev.DeploymentCreated)
            and event.deployment.rollback.rollback_triggering_deployment_id in watched
        ):
            watched.add(event.deployment_id)
        if event.deployment_id not in watched:
            return False
        view = state.apply(event)
        if live is None and output == "text":
            plain.render(event)
        elif live is not None and view is not None and time.monotonic() - last_draw > 0.2:
            live.update(render_deployment(view))
            last_draw = time.monotonic()
        return _all_done(state, watched)

    try:
        if live:
            live.start()
        entries = _with_interrupt(engine.events(None), interrupted, gone)
        async for entry in entries:
            if entry is _RUNNER_GONE:
                # its engine died: show the last of what it journaled, then stop waiting
                async for late in engine.events(None, after=last_seq, follow=False):
                    if take(late):
                        break
                break
            if entry is None:  # Ctrl-C
                if stop_sent:
                    break
                stop_sent = True
                interrupted.clear()
                message = f"stopping {deployment_id} (Ctrl-C again to stop watching)"
                console.print(f"[yellow]{message}[/]") if live is None else live.console.print(
                    message
                )
                for watched_id in watched:
                    if not engine.get_deployment(watched_id).terminal:
                        await engine.stop_deployment(watched_id)
                continue
            if take(entry):
                break
        await entries.aclose()
        if live is not None:
            for watched_id in sorted(watched, key=lambda i: i != deployment_id):
                if watched_id in state.deployments:
                    live.update(render_deployment(state.deployments[watched_id]))
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        watching.cancel()
        if live is not None:
            live.stop()
    return engine.get_deployment(deployment_id)


_RUNNER_GONE = object()  # yielded by _with_interrupt when a watched deployment's engine died
RUNNER_CHECK_SECONDS = 0.5


async def _watch_runners(
    engine: Engine, state: FleetState, watched: set[str], gone: asyncio.Event
) -> None:
    """Set `gone` when a watched deployment that has not finished lost its engine process."""
    while not gone.is_set():
        await asyncio.sleep(RUNNER_CHECK_SECONDS)
        for deployment_id in list(watched):
            if not _done(state, deployment_id) and engine.runner_gone(deployment_id):
                gone.set()
                break


async def _with_interrupt(events, interrupted: asyncio.Event, gone: asyncio.Event):
    """Journal entries; None whenever Ctrl-C was pressed; _RUNNER_GONE (and the end) once
    `gone` is set."""
    iterator = events.__aiter__()
    next_entry = asyncio.ensure_future(iterator.__anext__())
    try:
        while True:
            waiter = asyncio.ensure_future(interrupted.wait())
            died = asyncio.ensure_future(gone.wait())
            done, _ = await asyncio.wait(
                {next_entry, waiter, died}, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            died.cancel()
            if next_entry in done:
                try:
                    entry = next_entry.result()
                except StopAsyncIteration:
                    return
                yield entry
                next_entry = asyncio.ensure_future(iterator.__anext__())
            elif died in done:
                yield _RUNNER_GONE
                return
            else:
                yield None
    finally:
        next_entry.cancel()
        with contextlib.suppress(BaseException):
            await next_entry  # the reader must stop before it can be closed
        await iterator.aclose()


def _done(state: FleetState, deployment_id: str) -> bool:
    """The deployment ended and, if it failed or stopped, said what its rollback is (the
    runner always journals that decision)."""
    view = state.deployments.get(deployment_id)
    if view is None or view.ended is None:
        return False
    return (
        view.status == SUCCEEDED or view.rolls_back is not None or view.rollback_message is not None
    )


def _all_done(state: FleetState, watched: set[str]) -> bool:
    """Every watched deployment is done."""
    return all(_done(state, d) for d in watched)


def _print_summary(console: Console, engine: Engine, final: DeploymentInfo) -> None:
    console.print(
        _status(final).append(
            f"  {final.id} {final.application}/{final.deployment_group}"
            + (
                f" [{final.error_code}] {final.error_message}"
                if final.error_code
                else f" {final.error_message or ''}"
            )
        )
    )
    _print_failures(console, final)
    if final.rollback.rollback_deployment_id:
        rollback = engine.get_deployment(final.rollback.rollback_deployment_id)
        console.print(
            f"  rollback {rollback.id} (revision {rollback.revision.short()}): ",
            status_text(rollback.status),
        )
    elif final.rollback.rollback_message:
        console.print(f"  rollback: {escape(final.rollback.rollback_message)}")


def _print_failures(console: Console, deployment: DeploymentInfo, tail: int = 5) -> None:
    for instance in deployment.instances:
        failed = instance.failed_event()
        if failed is None or failed.diagnostics is None:
            continue
        d = failed.diagnostics
        exit_code = f", exit code {d.exit_code}" if d.exit_code is not None else ""
        # An event ended by a stop has CodeDeploy's catch-all UnknownError; the cause is the
        # deployment's own code (MANUAL_STOP, ALARM_ACTIVE).
        code = d.error_code
        if deployment.status == STOPPED and code == UNKNOWN_ERROR and deployment.error_code:
            code = f"ended by the stop ({deployment.error_code})"
        console.print(
            f"  [red]✖ {instance.name}[/] {failed.name}: {code}{exit_code}"
            + (f" in {escape(d.script_name)}" if d.script_name else "")
        )
        console.print(f"      {escape(d.message)}")
        for line in d.log_tail.splitlines()[-tail:]:
            console.print(f"      [dim]{escape(printable(line))}[/]")


# ---- the rest -------------------------------------------------------------------------------


def _deployment_json(engine: Engine, deployment: DeploymentInfo) -> dict[str, Any]:
    connections = _connections(engine, deployment.id)
    instances = []
    for instance in deployment.instances:
        shown = instance_to_api(deployment.id, instance)
        if instance.name in connections:
            shown["connection"] = connections[instance.name]
        instances.append(shown)
    info = deployment.to_api()
    weight = _target_version_weight(engine, deployment.id)
    if weight is not None:
        info["targetVersionWeight"] = weight
    return {"deploymentInfo": info, "instances": instances}


def _target_version_weight(engine: Engine, deployment_id: str) -> float | None:
    """A Lambda deployment's share of calls on its target version, as last set (or None)."""
    shifts = engine.store.journal_of_kind(deployment_id, ev.TrafficShifted.kind)
    if not shifts:
        return None
    last = shifts[-1].event
    assert isinstance(last, ev.TrafficShifted)
    return last.weight


def _connections(engine: Engine, deployment_id: str) -> dict[str, str]:
    """Each SSH instance's last connection state in the deployment (connected, closed, ...)."""
    states: dict[str, str] = {}
    for entry in engine.store.journal_of_kind(deployment_id, ev.InstanceConnection.kind):
        assert isinstance(entry.event, ev.InstanceConnection)
        states[entry.event.instance] = entry.event.state
    return states


def _get(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    deployment = engine.get_deployment(args.deployment_id)
    if args.output == "json":
        print(json.dumps(_deployment_json(engine, deployment), indent=2))
        return 0
    d = deployment
    console.print(f"[bold]{d.id}[/] {d.application}/{d.deployment_group}  ", _status(d))
    rows = [
        ("config", d.config_name),
        ("platform", f"{d.compute_platform}, {d.deployment_style}"),
        ("revision", f"{d.revision.short()} {d.revision.location} ({d.revision.bundle_type})"),
        ("previous revision", d.previous_revision.short() if d.previous_revision else "none"),
        ("creator", d.creator),
        ("description", d.description),
        ("created", _time(d.create_time)),
        ("started", _time(d.start_time)),
        ("completed", _time(d.complete_time)),
        ("duration", _duration(d)),
        ("time scale", time_scaled(d.options.time_scale).strip(" ()")),
        ("target weight", _weight_text(engine, d.id)),
        (
            "error" if d.error_code else "message",
            f"{d.error_code}: {d.error_message}" if d.error_code else (d.error_message or ""),
        ),
        ("rolled back by", d.rollback.rollback_deployment_id or ""),
        ("rolls back", d.rollback.rollback_triggering_deployment_id or ""),
        ("rollback", d.rollback.rollback_message or ""),
        ("overview", "  ".join(f"{k} {v}" for k, v in d.overview().items() if v)),
        ("interrupted", engine.interrupted_message(d) if d.interrupted else ""),
    ]
    for label, value in rows:
        if value:
            console.print(f"  {label:<18} {escape(str(value))}")
    connections = _connections(engine, d.id)
    for instance in d.instances:
        events = " ".join(f"{e.name}:{e.status}" for e in instance.events if e.status != "Pending")
        where = ""
        if instance.host.startswith("ssh:"):  # SSH instances: the host and the connection
            where = f"  {instance.host[4:]} ({connections.get(instance.name, 'not connected')})"
        console.print(
            f"  {instance.name:<16} batch {instance.batch or '-'}  ",
            status_text(instance.status),
            escape(where),
            f"  [dim]{escape(events)}[/]",
        )
    _print_failures(console, d, tail=10)
    return 0


def _weight_text(engine: Engine, deployment_id: str) -> str:
    weight = _target_version_weight(engine, deployment_id)
    return "" if weight is None else f"{weight:.0%} of calls on the target version"


def _list(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    deployments = engine.list_deployments(
        args.application_name, args.deployment_group_name, args.include_only_statuses, args.limit
    )
    # The listing's rows carry no instances; each deployment's own counts come with them.
    deployments = [engine.get_deployment(d.id) for d in deployments]
    if args.output == "json":
        print(json.dumps({"deployments": [d.to_api() for d in deployments]}, indent=2))
        return 0
    if not deployments:
        console.print("no deployments yet")
        return 0
    header = ("DEPLOYMENT", "STATUS", "GROUP", "REVISION", "CONFIG", "INSTANCES")
    rows = []
    for d in deployments:
        link = ""
        if d.rollback.rollback_deployment_id:
            link = f"→ rolled back by {d.rollback.rollback_deployment_id}"
        elif d.rollback.rollback_triggering_deployment_id:
            link = f"← rolls back {d.rollback.rollback_triggering_deployment_id}"
        rows.append(
            (
                d.id,
                _status(d),
                f"{d.application}/{d.deployment_group}",
                f"{d.revision.short()} {_revision_name(d.revision.location)}",
                d.config_name,
                _instance_counts(d),
                f"{d.creator}",
                _time(d.create_time),
                _duration(d),
                link,
            )
        )
    print_columns(console, (*header, "CREATOR", "CREATED", "DURATION", "ROLLBACK"), rows)
    return 0


def _revision_name(location: str) -> str:
    """The revision's folder or archive name: what people call it (web-v2)."""
    return Path(location).name or location


def _instance_counts(d: DeploymentInfo) -> str:
    counts = {k: v for k, v in d.overview().items() if v}
    return " ".join(f"{n} {status}" for status, n in counts.items()) or "none"


def print_columns(console: Console, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """A header and rows in aligned columns, each as wide as its widest cell: nothing is cut,
    and a pipe gets the same lines as a terminal (lines longer than the terminal wrap)."""
    titles = [Text(h, style="bold") for h in header]
    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i].plain) for row in [titles, *cells]) for i in range(len(header))]
    for row in [titles, *cells]:
        line = Text("  ").join(
            cell + " " * (width - len(cell.plain)) for cell, width in zip(row, widths, strict=True)
        )
        line.rstrip()
        console.print(line, overflow="ignore", crop=False)


def _stop(args: argparse.Namespace, engine: Engine, console: Console) -> int:
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


def _resume(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    asyncio.run(engine.resume_deployment(args.deployment_id))
    if args.wait:
        return follow(engine, console, args.deployment_id, args.output)
    console.print(f"resuming {args.deployment_id}")
    return 0


def _rollback(args: argparse.Namespace, engine: Engine, console: Console) -> int:
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


def _register(args: argparse.Namespace, engine: Engine, console: Console) -> int:
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


def _revisions(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    revisions = engine.list_revisions(args.application_name)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "revisions": [
                        {
                            "applicationName": r.application,
                            "sha256": r.revision.sha256,
                            "location": r.revision.location,
                            "bundleType": r.revision.bundle_type,
                            "description": r.description,
                            "registerTime": r.register_time,
                            "firstUsedTime": r.first_used_time,
                            "lastUsedTime": r.last_used_time,
                        }
                        for r in revisions
                    ]
                },
                indent=2,
            )
        )
        return 0
    for r in revisions:
        console.print(
            f"{r.revision.short()}  {r.application}  {r.revision.bundle_type:<9}  "
            f"{escape(r.revision.location)}"
            f"  registered {_time(r.register_time)}  last used {_time(r.last_used_time) or 'never'}"
            + (f"  {escape(r.description)}" if r.description else "")
        )
    if not revisions:
        console.print("no revisions yet")
    return 0


def _journal(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    engine.get_deployment(args.deployment_id)
    entries = engine.store.journal(args.deployment_id, limit=10_000_000)
    if args.output == "json":
        from engine.serialize import to_data

        for entry in entries:
            print(json.dumps({"seq": entry.seq, "kind": entry.event.kind, **to_data(entry.event)}))
        return 0
    plain = PlainRenderer(lambda line: console.print(escape(line)), show_output=args.show_output)
    for entry in entries:
        plain.render(entry.event)
    return 0


def _time(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def _status(d: DeploymentInfo) -> Text:
    """The status, with `(interrupted)` once the engine process running it is gone."""
    shown = status_text(d.status)
    if d.interrupted:
        shown.append(" (interrupted)", style="bold yellow")
    return shown


def _duration(d: DeploymentInfo) -> str:
    if d.start_time is None:
        return ""
    end = d.complete_time or d.interrupted_at or time.time()
    return f"{end - d.start_time:.1f}s"


__all__ = ["add_parsers", "follow", "plan_json", "print_plan"]
