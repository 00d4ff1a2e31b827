"""`deploydeck register-task-definition`: the next revision of an ECS-like task definition (what
a service's tasks run), registered under the workspace's state folder for ECS deployments."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the command runs, not when its line is parsed
    from rich.console import Console

    from engine.api import Engine


def task_definition_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", required=True, help="the task definition's name, e.g. web")
    parser.add_argument(
        "--command",
        required=True,
        help="what each task runs (split as a shell would); it listens on $PORT",
    )
    parser.add_argument(
        "--environment", nargs="*", default=(), metavar="KEY=VALUE", help="environment variables"
    )
    parser.add_argument("--container-port", type=int, default=8080, metavar="PORT")
    parser.add_argument("--desired-count", type=int, default=1, metavar="N")
    parser.add_argument("--health-check-path", default="/", metavar="PATH")
    parser.add_argument("--working-directory", metavar="FOLDER")


def register_task_definition_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    from rich.markup import escape

    environment = {}
    for pair in args.environment:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            console.print(f"[red]ERROR:[/] --environment {escape(pair)!r}: write KEY=VALUE")
            return 1
        environment[key] = value
    registered = engine.register_task_definition(
        args.family,
        shlex.split(args.command),
        environment=environment,
        container_port=args.container_port,
        desired_count=args.desired_count,
        health_check_path=args.health_check_path,
        working_directory=args.working_directory,
    )
    if args.output == "json":
        print(json.dumps({"taskDefinition": registered}))
    else:
        console.print(
            f"registered {registered['family']}:{registered['revision']}: "
            f"{escape(' '.join(registered['command']))}, {registered['desiredCount']} task(s)"
        )
    return 0
