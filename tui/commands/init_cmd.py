"""`deploydeck init`: write a commented starter deploydeck.yml (a fleet of local instances)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
from pathlib import Path
from typing import Any

from engine.workspace import WORKSPACE_FILENAME
from engine.workspace.starter import (
    DEFAULT_LOCAL_INSTANCES,
    MAX_LOCAL_INSTANCES,
    STARTER_APPLICATION,
    STARTER_GROUP,
    free_port_range,
    starter_config,
    starter_workspace,
    web_port,
)

SAMPLE_REVISION = Path(__file__).resolve().parents[2] / "sample_revisions" / "web-v1"

EPILOG = f"""\
examples:
  deploydeck init                          {WORKSPACE_FILENAME} here, with 4 local instances
  deploydeck init --local-instances 8 demo a demo/ folder with 8 instances
  deploydeck init --force                  replace an existing {WORKSPACE_FILENAME}

Exit status: 0 when the file was written, 1 when it was not (it exists, or cannot be written)."""


def local_instance_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= count <= MAX_LOCAL_INSTANCES:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LOCAL_INSTANCES} (got {count})")
    return count


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "init",
        help=f"write a commented starter {WORKSPACE_FILENAME} (a fleet of local instances)",
        description=f"Write a commented starter {WORKSPACE_FILENAME}: application "
        f"{STARTER_APPLICATION}, deployment group {STARTER_GROUP} of local instances tagged "
        "role=web, each with its own WEB_PORT for the sample web app.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=".",
        metavar="PATH",
        help=f"the folder to write {WORKSPACE_FILENAME} in, created if needed (default: here)",
    )
    parser.add_argument(
        "--local-instances",
        type=local_instance_count,
        default=DEFAULT_LOCAL_INSTANCES,
        metavar="N",
        help=f"number of local instances, 1 to {MAX_LOCAL_INSTANCES} "
        f"(default: {DEFAULT_LOCAL_INSTANCES})",
    )
    parser.add_argument(
        "--force", action="store_true", help=f"replace an existing {WORKSPACE_FILENAME}"
    )
    parser.set_defaults(run=run)


def target_file(path: str) -> Path:
    """PATH is a folder, or the workspace file itself when it ends in .yml or .yaml."""
    given = Path(path).expanduser()
    if given.suffix.lower() in (".yml", ".yaml") and not given.is_dir():
        return given.absolute()
    return given.absolute() / WORKSPACE_FILENAME


def write_new(target: Path, text: str) -> None:
    """Create `target`; FileExistsError if it exists (checked and created in one step)."""
    with open(target, "x", encoding="utf-8") as handle:
        handle.write(text)


def write_replacing(target: Path, text: str) -> None:
    """Replace `target` atomically: a reader never sees half a file."""
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=".deploydeck-", suffix=".yml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sample_revision() -> str:
    """The sample web app's folder as the user can type it: relative when under the current
    folder (as in a checkout), absolute otherwise."""
    if not SAMPLE_REVISION.is_dir():
        return "sample_revisions/web-v1"
    try:
        return str(SAMPLE_REVISION.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(SAMPLE_REVISION)


def next_steps(folder: Path) -> list[str]:
    """What to run next: plan, then deploy, the sample web app on the new fleet. Each command is
    checked against this CLI first, so nothing is suggested that it would not accept."""
    sample = sample_revision()
    here = folder in (Path.cwd(), Path.cwd().resolve())
    workspace = [] if here else ["-w", str(folder)]
    target = [
        "--application-name",
        STARTER_APPLICATION,
        "--deployment-group-name",
        STARTER_GROUP,
        "--revision",
        sample,
    ]
    plan = ["plan", *workspace, *target]
    deploy = ["create-deployment", *workspace, *target, "--wait"]
    if accepted(plan) and accepted(deploy):
        return [
            "Next: see the batches, then deploy the sample web app to the fleet:",
            f"  deploydeck {shlex.join(plan)}",
            f"  deploydeck {shlex.join(deploy)}",
        ]
    return [
        "Next: check the sample revision the fleet will run:",
        f"  deploydeck validate {sample}",
    ]


def accepted(argv: list[str]) -> bool:
    """Whether `deploydeck` parses `argv` (parsing only; nothing runs)."""
    from tui.cli import build_parser  # late: tui.cli imports this module

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine.workspace import load_workspace
    from tui.commands.output import print_diagnostics

    console = Console(highlight=False, soft_wrap=True)
    target = target_file(args.path)
    count = args.local_instances
    if target.is_dir():
        console.print(f"[red]ERROR:[/] {escape(str(target))} is a folder, not a file")
        return 1
    try:
        first_port = free_port_range(count)  # ports another server holds would fail the app
    except OSError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}; nothing was written")
        return 1
    text = starter_workspace(count, first_port)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if args.force:
            existed = target.exists()
            write_replacing(target, text)
        else:
            existed = False
            write_new(target, text)
    except FileExistsError:
        console.print(
            f"[red]ERROR:[/] {escape(str(target))} already exists; nothing was written. "
            "Use --force to replace it, or choose another PATH."
        )
        return 1
    except OSError as error:
        console.print(f"[red]ERROR:[/] cannot write {escape(str(target))}: {escape(str(error))}")
        return 1
    # The starter must load cleanly; say so loudly if it ever does not.
    result = load_workspace(target)
    if result.diagnostics:
        print_diagnostics(console, result.diagnostics)
    if not result.ok:
        console.print(f"[red]✖ {escape(str(target))} was written but does not load[/]")
        return 1
    last = f"web-{count}" if count > 1 else ""
    names = f"web-1 to {last}" if last else "web-1"
    low, high = web_port(1, first_port), web_port(count, first_port)
    ports = f"{low}-{high}" if count > 1 else str(low)
    console.print(f"[green]✔ {'Replaced' if existed else 'Wrote'} {escape(str(target))}[/]")
    console.print(
        f"  application {STARTER_APPLICATION}, deployment group {STARTER_GROUP} "
        f"({starter_config(count)}, auto rollback on failure and on stop)"
    )
    console.print(
        f"  {count} local instance{'s' * (count != 1)} {names}, tagged role=web, "
        f"WEB_PORT {ports}, in {escape(str(target.parent / '.deploydeck' / 'instances'))}/"
    )
    console.print("  one custom deployment config to try: QuarterAtATime")
    for line in next_steps(target.parent):
        console.print(escape(line))
    console.print(
        "The sample's web servers keep running after a deployment, like a real fleet's; "
        "stop them with:"
    )
    console.print(f"  {escape(stop_servers_command(target.parent))}")
    return 0


def stop_servers_command(folder: Path) -> str:
    """A shell command ending the sample web servers of the fleet in `folder`."""
    here = folder in (Path.cwd(), Path.cwd().resolve())
    instances = Path(".deploydeck/instances") if here else folder / ".deploydeck" / "instances"
    pid_files = f"{shlex.quote(str(instances))}/*/fs/tmp/deploydeck-web/run/server.pid"
    return f"cat {pid_files} | xargs -r kill"
