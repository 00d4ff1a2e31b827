"""`deploydeck reset-demo`: end the built-in demo's processes and remove it, to start over."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "reset-demo",
        help="end the demo's web servers and remove the demo workspace, to start over",
        description="End the built-in demo's own processes (the web servers and hooks its "
        "instances run, and any deployment still running there) and remove its folder; the "
        "next `deploydeck` sets the demo up again. It refuses while a console has the demo "
        "open. The folder is $DEPLOYDECK_DEMO_HOME, else ~/.local/share/deploydeck/demo; a "
        "folder that is not a demo is never touched.",
        epilog="Exit status: 0 when the demo was removed or there was none, 1 when the folder "
        "is not a demo.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from tui.demo import DemoSetupError, reset_demo

    console = Console(highlight=False, soft_wrap=True)
    try:
        reset_demo(say=lambda text: console.print(escape(text)))
    except DemoSetupError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    return 0
