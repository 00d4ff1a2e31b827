"""`deploydeck balancer status|start|stop`: the load balancers deploydeck runs for deployment
groups (the built-in proxy, an owned HAProxy), each in a host process that outlives
deployments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from engine.api import Engine

GROUP_HELP = "APP/GROUP, or GROUP alone when one application has it"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "balancer",
        help="show, start or stop the load balancers deploydeck runs for deployment groups",
        description="A group's built-in balancer or owned HAProxy runs in a host process of "
        "its own: the first deployment starts it, later deployments drive it, and it serves "
        "the group's instances in service between deployments too. It ends with `balancer "
        "stop`, `reset-demo`, or when the workspace's .deploydeck folder is removed.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, help_text, group_nargs in (
        (
            "status",
            "each group's balancer host: its pid, listen address and every instance's state "
            "(all groups with a balancer deploydeck runs, or GROUP's)",
            "?",
        ),
        (
            "start",
            "start GROUP's balancer host unless it runs, configured with the group's instances "
            "as a deployment would (instances a deployment left out of service stay out)",
            None,
        ),
        (
            "stop",
            "end GROUP's balancer host and the HAProxy it runs: the group's port stops "
            "answering until the next deployment (or `balancer start`) starts it again",
            None,
        ),
    ):
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.add_argument("group", nargs=group_nargs, metavar="GROUP", help=GROUP_HELP)
        sub.add_argument(
            "-w",
            "--workspace",
            type=Path,
            default=argparse.SUPPRESS,  # keeps `deploydeck -w PATH balancer ...`'s value
            metavar="PATH",
            help="the workspace file or its folder (default: ./deploydeck.yml)",
        )
        sub.add_argument("--output", choices=("text", "json"), default="text")
        sub.set_defaults(run=lambda args, verb=verb: _run_verb(args, verb))


def _run_verb(args: argparse.Namespace, verb: str) -> int:
    from tui.commands.deploy_cmds import _run

    return _run(args, f"balancer_cmd.{verb}_cmd")


def _groups(engine: Engine, given: str | None) -> list[tuple[str, str]]:
    """The groups GROUP names (all with a hosted balancer when None); EngineError if none."""
    from engine.api import EngineError

    hosted = engine.hosted_balancers()
    if given is None:
        if not hosted:
            raise EngineError(
                f"no deployment group of {engine.workspace.path} has a load balancer deploydeck "
                "runs (load_balancer kind builtin, or haproxy without socket)"
            )
        return hosted
    app, _, group = given.rpartition("/")
    found = [(a, g) for a, g in hosted if g == group and (not app or a == app)]
    if len(found) == 1:
        return found
    if found:
        raise EngineError(
            f"several applications have a group {group!r}: name one as "
            + " or ".join(f"{a}/{g}" for a, g in found)
        )
    known = ", ".join(f"{a}/{g}" for a, g in hosted) or "none"
    raise EngineError(
        f"no deployment group {given!r} with a load balancer deploydeck runs in "
        f"{engine.workspace.path}; those with one: {known}"
    )


def _plain(status: Any) -> dict[str, Any] | None:
    if status is None:
        return None
    return {
        "pid": status.pid,
        "kind": status.kind,
        "listen": f"{status.address[0]}:{status.address[1]}" if status.address else None,
        "haproxyPid": status.haproxy_pid,
        "instances": [
            {
                "instance": s.name,
                "service": str(s.service),
                "health": str(s.health),
                "openConnections": s.open_connections,
                "requestsServed": s.requests_served,
                "detail": s.detail,
            }
            for s in status.instances
        ],
    }


def _print(console: Console, app: str, group: str, status: Any) -> None:
    from rich.markup import escape

    from tui.commands.read_cmds import print_columns

    if status is None:
        console.print(
            escape(
                f"{app}/{group}: not running; the next deployment (or `deploydeck balancer "
                f"start {app}/{group}`) starts it"
            )
        )
        return
    if status.kind is None or status.address is None:
        console.print(
            escape(f"{app}/{group}: host pid {status.pid} runs, with no balancer yet")
            + " (a deployment configures it)"
        )
        return
    haproxy = f", HAProxy pid {status.haproxy_pid}" if status.haproxy_pid else ""
    host, port = status.address
    console.print(
        escape(f"{app}/{group}: {status.kind} listening on {host}:{port}, host pid {status.pid}")
        + haproxy
    )
    rows = [
        (
            "  " + s.name,
            str(s.service),
            str(s.health),
            "-" if s.open_connections is None else s.open_connections,
            "-" if s.requests_served is None else s.requests_served,
            s.detail,
        )
        for s in status.instances
    ]
    if rows:
        print_columns(
            console, ("  INSTANCE", "SERVICE", "HEALTH", "OPEN", "SERVED", "LAST CHECK"), rows
        )


def status_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    import asyncio

    groups = _groups(engine, args.group)
    found = [(a, g, asyncio.run(engine.balancer_status(a, g))) for a, g in groups]
    if args.output == "json":
        print(
            json.dumps(
                {
                    "balancers": [
                        {"application": a, "group": g, "host": _plain(s)} for a, g, s in found
                    ]
                }
            )
        )
        return 0
    for app, group, status in found:
        _print(console, app, group, status)
    return 0


def start_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    import asyncio

    ((app, group),) = _groups(engine, args.group)
    status = asyncio.run(engine.start_balancer(app, group))
    if args.output == "json":
        print(json.dumps({"application": app, "group": group, "host": _plain(status)}))
        return 0
    _print(console, app, group, status)
    return 0


def stop_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    import asyncio

    ((app, group),) = _groups(engine, args.group)
    ran = asyncio.run(engine.stop_balancer(app, group))
    if args.output == "json":
        print(json.dumps({"application": app, "group": group, "stopped": ran}))
        return 0
    from rich.markup import escape

    said = "balancer host ended, with what it ran" if ran else "no balancer host was running"
    console.print(escape(f"{app}/{group}: {said}"))
    return 0
