"""`deploydeck local`: deploy a revision to this machine as codedeploy-local does."""

from __future__ import annotations

import argparse
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from engine.host.layout import DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME

if TYPE_CHECKING:  # the agent and rich are imported when `local` runs, not to parse its line
    from rich.console import Console

    from engine.host.results import CommandResult

TAIL_LINES = 20

EPILOG = """\
examples:
  deploydeck local -l sample_revisions/web-v1
  deploydeck local -l web.tgz -t tgz -g web-staging -b OVERWRITE
  deploydeck local -l sample_revisions/web-v1 -e ApplicationStop,ApplicationStart

Events run in the order CodeDeploy uses; DownloadBundle and Install are always included.
Exit status: 0 when every event succeeded, 1 otherwise."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "local",
        help="deploy a revision to this machine, as codedeploy-local does",
        description="Deploy a revision to this machine exactly as the CodeDeploy agent would: "
        "the appspec's files, permissions and hooks, in lifecycle order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "-l",
        "--bundle-location",
        default=os.getcwd(),
        metavar="PATH",
        help="the revision: a directory, or a tar, tgz or zip archive (default: this directory)",
    )
    add(
        "-t",
        "--type",
        default="directory",
        metavar="TYPE",
        help="bundle type: tgz, tar, zip or directory (default: directory)",
    )
    add(
        "-b",
        "--file-exists-behavior",
        default="DISALLOW",
        metavar="BEHAVIOR",
        help="when a file to install already exists: DISALLOW (fail), OVERWRITE or RETAIN "
        "(default: DISALLOW; an appspec file_exists_behavior wins)",
    )
    add(
        "-g",
        "--deployment-group",
        default=DEFAULT_GROUP_ID,
        metavar="ID",
        help=f"deployment group id, the folder under the root (default: {DEFAULT_GROUP_ID})",
    )
    add(
        "-d",
        "--deployment-group-name",
        default=DEFAULT_GROUP_NAME,
        metavar="NAME",
        help=f"DEPLOYMENT_GROUP_NAME for hooks (default: {DEFAULT_GROUP_NAME})",
    )
    add(
        "-a",
        "--application-name",
        default=None,
        metavar="NAME",
        help="APPLICATION_NAME for hooks (default: the bundle location)",
    )
    add(
        "-e",
        "--events",
        default=None,
        metavar="LIST",
        help="comma-separated events to run, in order (default: all eleven)",
    )
    add(
        "-c",
        "--agent-configuration-file",
        default=None,
        metavar="FILE",
        help="agent configuration (:root_dir:, :log_dir:, :max_revisions:, :verbose:); "
        "default: a root under ~/.local/share/deploydeck",
    )
    add(
        "-A",
        "--appspec-filename",
        default=None,
        metavar="NAME",
        help="the appspec's file name in the bundle (default: appspec.yml, else appspec.yaml)",
    )
    add(
        "--max-bundle-size",
        type=_size,
        default=None,
        metavar="SIZE",
        help="refuse bundles larger than this, unpacked (e.g. 512M, 2G; default: 4G)",
    )
    add("-q", "--quiet", action="store_true", help="do not show script output as it runs")
    parser.set_defaults(run=run)


async def _until_signalled(work: Coroutine[Any, Any, bool]) -> bool:
    """Run `work`; SIGTERM or SIGHUP cancel it as Ctrl-C does, so the running hook's process
    groups are ended before the command exits."""
    import asyncio
    import signal

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    return await work


def _size(text: str) -> int:
    from engine.revision import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from engine.local import (
        LocalError,
        LocalOptions,
        LocalRun,
        load_agent_config,
        prepare_revision,
        validate_options,
    )
    from engine.revision import DEFAULT_MAX_BUNDLE_BYTES
    from tui.commands.output import print_diagnostics

    console = Console(highlight=False, soft_wrap=True)
    options = LocalOptions(
        bundle_location=args.bundle_location,
        bundle_type=args.type,
        file_exists_behavior=args.file_exists_behavior,
        group_id=args.deployment_group,
        group_name=args.deployment_group_name,
        application_name=args.application_name,
        events=args.events,
        config_file=args.agent_configuration_file,
        appspec_filename=args.appspec_filename,
        max_bundle_bytes=(
            DEFAULT_MAX_BUNDLE_BYTES if args.max_bundle_size is None else args.max_bundle_size
        ),
    )
    try:
        validate_options(options)
        config = load_agent_config(options.config_file)
        revision = prepare_revision(options)
    except LocalError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        print_diagnostics(console, error.diagnostics)
        return 1
    print_diagnostics(console, revision.warnings)
    deployment = LocalRun(options, config, revision)
    bundle = revision.bundle
    console.print(
        f"Deploying [bold]{escape(str(bundle.path))}[/] ({bundle.bundle_type}, sha256 "
        f"{bundle.sha256[:12]}) as [bold]{deployment.deployment_id}[/]"
    )
    where = "default" if config.source == "default" else f"from {config.source}"
    console.print(f"Deployment root: {escape(config.root_dir)} ({where})")
    console.print(f"Starting deployment in folder {escape(deployment.deployment_dir)}")
    renderer = ProgressRenderer(console, show_output=not args.quiet or config.verbose)
    try:
        ok = asyncio.run(_until_signalled(deployment.run(renderer.observe)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print(
            f"[red]✖ Interrupted[/] during {renderer.current_event or 'start-up'}: the running "
            "script's process group was ended; the deployment did not finish."
        )
        console.print(f"Script log: {escape(deployment.scripts_log)}")
        return 1
    if ok:
        console.print("[green]✔ The appspec is valid and the local deployment succeeded.[/]")
    else:
        print_failure(console, deployment.results[-1])
    console.print(f"Script log: {escape(deployment.scripts_log)}")
    return 0 if ok else 1


class ProgressRenderer:
    """Prints each event and script as it runs, with script output indented below it."""

    def __init__(self, console: Console, show_output: bool) -> None:
        self.console = console
        self.show_output = show_output
        self.current_event: str | None = None

    def observe(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "event_started":
            self.current_event = message["event"]
        elif kind == "event_finished":
            self._event_finished(message["event"], message["result"])
        elif kind == "agent":
            self._agent_message(message)

    def _event_finished(self, event: str, result: CommandResult) -> None:
        from rich.markup import escape

        took = f"{result.ended - result.started:5.2f}s"
        detail = result.notes[0] if result.notes else result.message
        if result.ok:
            self.console.print(f"  [green]✔[/] {event:<20} {took}  [dim]{escape(detail)}[/]")
        else:
            self.console.print(f"  [red]✖ {event:<20}[/] {took}  [red]{result.error_code}[/]")

    def _agent_message(self, message: dict[str, Any]) -> None:
        from rich.markup import escape

        from tui.render.terminal_text import printable

        kind = message.get("type")
        if kind == "script_started":
            self.console.print(f"  [cyan]◌[/] {self.current_event}: {escape(message['location'])}")
        elif kind == "output" and self.show_output:
            line = printable(message["line"].rstrip("\n"))
            self.console.print(f"      [dim]\\[{message['stream']}] {escape(line)}[/]")


def print_failure(console: Console, result: CommandResult) -> None:
    from rich.markup import escape

    from tui.render.terminal_text import printable

    console.print(f"[red]✖ The local deployment failed in {result.command}.[/]")
    if result.script_name:
        path = result.scripts[-1].path if result.scripts else result.script_name
        revision = "" if result.revision == "current" else f", from the {result.revision} revision"
        console.print(f"  script:  {escape(result.script_name)} ({escape(path)}{revision})")
    reason = result.error_code
    if result.exit_code is not None:
        reason += f", exit code {result.exit_code}"
    console.print(f"  error:   {reason}")
    console.print(f"  message: {escape(result.message)}")
    if result.log_tail:
        console.print(f"  last output (up to {TAIL_LINES} lines):")
        for line in result.log_tail.splitlines()[-TAIL_LINES:]:
            console.print(f"    {escape(printable(line))}")
