"""`deploydeck console` (and `deploydeck` alone): open the console on a workspace or the demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "console",
        help="open the console (the default command)",
        description="Open the deploydeck console on a workspace: ./deploydeck.yml, the one given "
        "with --workspace, or else the built-in demo workspace (created on first run).",
    )
    add_arguments(parser, top_level=False)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser, top_level: bool = True) -> None:
    """The console's options, on `deploydeck` itself and on `deploydeck console`; the
    subcommand's leave the top level's values alone unless given (`deploydeck -w X console`)."""

    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "-w",
        "--workspace",
        type=Path,
        default=default(None),
        metavar="PATH",
        help="a workspace file or its folder",
    )
    parser.add_argument(
        "--demo", action="store_true", default=default(False), help="open the built-in demo"
    )
    parser.add_argument(
        "--deployment-id", default=default(None), help="open this deployment at once"
    )


def choose_workspace(args: argparse.Namespace) -> Path:
    from engine.workspace import WORKSPACE_FILENAME, find_workspace
    from tui.demo import ensure_demo_workspace  # the engine is imported only when needed

    if args.demo:
        return ensure_demo_workspace()
    if args.workspace is not None:
        return find_workspace(Path.cwd(), args.workspace)
    if (Path.cwd() / WORKSPACE_FILENAME).exists():
        return Path.cwd() / WORKSPACE_FILENAME
    return ensure_demo_workspace()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine.workspace import WorkspaceError, load_workspace
    from tui.commands.output import print_diagnostics
    from tui.demo import DemoSetupError, traffic_for

    console = Console(highlight=False, soft_wrap=True)
    try:
        path = choose_workspace(args)
    except (WorkspaceError, DemoSetupError) as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    except KeyboardInterrupt:
        console.print("Interrupted: the demo setup did not finish; the next start begins it again")
        return 130
    result = load_workspace(path)
    if not result.ok or result.workspace is None:  # ok means a workspace and no errors
        print_diagnostics(console, result.diagnostics)
        console.print(f"[red]ERROR:[/] {path} has errors; fix them and run again")
        return 1
    from engine.api import StoreError
    from tui.app import DeployDeckApp

    try:
        app = DeployDeckApp(result.workspace, open_deployment=args.deployment_id)
    except StoreError as error:  # state.db damaged or locked: one line, no traceback
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    from tui.demo import demo_trickle

    try:
        # the demo's function and service get requests, and its balancer a trickle
        with traffic_for(path, result.workspace), demo_trickle(result.workspace) as trickle:
            app.trickle = trickle
            app.run()
    except DemoSetupError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    return 0
