"""`deploydeck service status [SERVICE]` and `deploydeck service stop SERVICE`: the ECS-like
services the workspace's deployments started, each run by a long-lived host process between
deployments; status shows its host, listeners and task sets, stop ends the host and its tasks."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the command runs, not when its line is parsed
    from rich.console import Console

    from engine.api import Engine

HELP = "show or stop the ECS-like services deployments started (each kept by a host process)"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "service",
        help=HELP,
        description="A service that an ECS deployment started keeps running between "
        "deployments in a host process of its own, with its production and test listeners and "
        "its task sets. `status` shows each service (or the one named): its host's pid, its "
        "listeners with their weights by target group, and its task sets with their "
        "desired/pending/running counts and weights. `stop` ends a service's host and every "
        "task it runs; its next deployment starts it again.",
        epilog="Exit status: 0 on success, 1 when the workspace cannot be read or no such "
        "service was deployed.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, help_text, handler, needs_name in (
        ("status", "the services' hosts, listeners and task sets", "status_cmd", False),
        ("stop", "end a service's host and its tasks", "stop_cmd", True),
    ):
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.add_argument(
            "-w", "--workspace", type=Path, default=argparse.SUPPRESS, metavar="PATH"
        )  # SUPPRESS keeps `deploydeck -w PATH service ...`'s value
        sub.add_argument("--output", choices=("text", "json"), default="text")
        sub.add_argument(
            "service",
            nargs=None if needs_name else "?",
            metavar="SERVICE",
            help="the service's name (its deployment group target's `service`)",
        )
        sub.set_defaults(run=_runner(f"service_cmd.{handler}"))


def _runner(handler: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from tui.commands.deploy_cmds import _run

        return _run(args, handler)

    return run


def stop_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    import asyncio

    stopped = asyncio.run(engine.stop_service(args.service))
    if args.output == "json":
        print(json.dumps({"service": args.service, "stopped": stopped}))
    elif stopped:
        console.print(f"service {args.service}: its host and tasks are stopped")
    else:
        console.print(f"service {args.service}: no host was running")
    return 0


def status_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    import asyncio

    from rich.markup import escape

    services = asyncio.run(engine.service_status(args.service))
    if args.output == "json":
        print(json.dumps({"services": services}, indent=2))
        return 0
    if not services:
        console.print("no service has been deployed in this workspace")
    for service in services:
        for line in status_lines(service):
            console.print(escape(line))
    return 0


def status_lines(service: dict[str, Any]) -> list[str]:
    """A service's status as a few lines of text."""
    pid = service["hostPid"]
    host = f"host pid {pid}" if pid else "host not running (its next deployment starts it)"
    lines = [f"{service['service']}: {host}"]
    for name in ("production", "test"):
        listener = service["listeners"][name]
        if listener is None:
            continue
        weights = ", ".join(f"{g} {w}%" for g, w in sorted(listener["weights"].items()))
        answers = "answers" if pid else "answered"
        lines.append(f"  {name} listener {listener['address']} {answers}: {weights or 'none'}")
    if service["restoring"]:
        lines.append("  starting its primary task set again")
    if service["restoreError"]:
        lines.append(f"  {service['restoreError']}")
    for t in service["taskSets"]:
        lines.append(
            f"  {t['taskSetLabel']} {t['status']} {t['taskDefinition']} on "
            f"{t['targetGroup']['name']}: {t['runningCount']}/{t['desiredCount']} running, "
            f"{t['pendingCount']} pending, {t['trafficWeight']:g}% of production, "
            f"{t['testTrafficWeight']:g}% of test"
        )
    if pid and not service["taskSets"]:
        lines.append("  no task set")
    return lines
