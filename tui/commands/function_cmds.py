"""`deploydeck create-function`, `publish-version`, `invoke`: the workspace's Lambda-like
functions, kept in the function registry under its state folder (engine/functions/README.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the functions' modules are imported only when a function command runs
    from rich.console import Console

    from engine.functions import FunctionRegistry


def add_parsers(commands: Any) -> None:
    def command(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "-w", "--workspace", type=Path, default=argparse.SUPPRESS, metavar="PATH"
        )  # SUPPRESS keeps `deploydeck -w PATH COMMAND`'s value
        parser.add_argument("--output", choices=("text", "json"), default="text")
        parser.add_argument("--function-name", required=True, metavar="NAME")
        parser.set_defaults(run=lambda args: _run(args, handler))
        return parser

    create = command(
        "create-function", "create a function (or update its $LATEST) from a code folder", _create
    )
    create.add_argument("--code", type=Path, required=True, metavar="FOLDER")
    create.add_argument(
        "--command", required=True, help="the worker command, run in the code folder"
    )
    create.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    create.add_argument("--concurrency", type=int, default=10)
    create.add_argument(
        "--environment", nargs="*", default=(), metavar="KEY=VALUE", help="environment variables"
    )

    publish = command("publish-version", "freeze $LATEST as the next numbered version", _publish)
    publish.add_argument("--description", default="")
    publish.add_argument(
        "--alias", metavar="ALIAS", help="also point this alias (created if new) at the version"
    )

    invoke = command("invoke", "call a function (NAME, NAME:VERSION or NAME:ALIAS)", _invoke)
    invoke.add_argument("--payload", default="{}", metavar="JSON")


def _run(args: argparse.Namespace, handler: Any) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine.functions import FunctionRegistry, RegistryError, ServiceError
    from engine.workspace import WorkspaceError, find_workspace, load_workspace
    from tui.commands.output import print_diagnostics

    console = Console(highlight=False, soft_wrap=True, stderr=args.output == "json")
    try:
        result = load_workspace(find_workspace(Path.cwd(), getattr(args, "workspace", None)))
    except WorkspaceError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    print_diagnostics(console, result.diagnostics)
    if not result.ok or result.workspace is None:  # ok means a workspace and no errors
        console.print("[red]ERROR:[/] the workspace has errors; fix them and run again")
        return 1
    registry = FunctionRegistry(result.workspace.state_dir)
    try:
        return int(handler(args, registry, console))
    except (RegistryError, ServiceError, ValueError) as error:
        if args.output == "json":
            print(json.dumps({"error": str(error)}))
        else:
            console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1


def _create(args: argparse.Namespace, registry: FunctionRegistry, console: Console) -> int:
    environment = {}
    for pair in args.environment:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--environment {pair!r}: write KEY=VALUE")
        environment[key] = value
    function = registry.create(
        args.function_name,
        args.code,
        args.command,
        timeout=args.timeout,
        concurrency=args.concurrency,
        environment=environment,
    )
    if args.output == "json":
        print(json.dumps({"FunctionName": function.name, "Code": str(function.code)}))
    else:
        console.print(
            f"{function.name}: $LATEST runs {' '.join(function.command)} in {function.code}"
        )
    return 0


def _publish(args: argparse.Namespace, registry: FunctionRegistry, console: Console) -> int:
    version = registry.publish_version(args.function_name, args.description)
    if args.alias:
        registry.set_alias(args.function_name, args.alias, version)
    if args.output == "json":
        print(json.dumps({"FunctionName": args.function_name, "Version": version}))
    else:
        alias = f" (alias {args.alias} points at it)" if args.alias else ""
        console.print(f"{args.function_name}: version {version}{alias}")
    return 0


def _invoke(args: argparse.Namespace, registry: FunctionRegistry, console: Console) -> int:
    import asyncio

    from rich.console import Console

    from engine.functions.gateway import parse_function_name

    payload = args.payload.encode()
    name, qualifier = parse_function_name(args.function_name, None)
    url = registry.gateway_url()
    if url is not None:  # a running gateway (a deployment's): its routing and warm workers
        status, version, body, error = _over_http(url, name, qualifier, payload)
    else:
        status, version, body, error = asyncio.run(_in_process(registry, name, qualifier, payload))
    if args.output == "json":
        print(
            json.dumps(
                {
                    "StatusCode": status,
                    "ExecutedVersion": version,
                    "FunctionError": error,
                    "Payload": json.loads(body or b"null"),
                }
            )
        )
    else:
        Console(stderr=True, highlight=False).print(f"[dim]version {version}[/]")
        print(body.decode(errors="replace"))
    return 1 if error else 0


def _over_http(url: str, name: str, qualifier: str, payload: bytes) -> tuple[int, str, bytes, bool]:
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/{name}/invocations?Qualifier={quote(qualifier)}",
        data=payload,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as response:
            return (
                response.status,
                response.headers.get("X-Amz-Executed-Version", ""),
                response.read(),
                bool(response.headers.get("X-Amz-Function-Error")),
            )
    except urllib.error.HTTPError as error:
        raise ValueError(
            f"the gateway at {url} refused the call: {error.read().decode()}"
        ) from None


async def _in_process(
    registry: FunctionRegistry, name: str, qualifier: str, payload: bytes
) -> tuple[int, str, bytes, bool]:
    from engine.functions import FunctionGateway

    async with FunctionGateway(registry) as gateway:
        result = await gateway.invoke(f"{name}:{qualifier}", payload)
    return result.status, result.version, result.body, result.function_error
