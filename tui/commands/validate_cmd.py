"""`deploydeck validate PATH`: every error and warning of a revision or appspec; runs nothing."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the checks are imported only when `validate` runs
    from engine.appspec.diagnostics import AppSpecResult

APPSPEC_SUFFIXES = (".yml", ".yaml", ".json")


def parsers() -> dict[str, Callable[..., AppSpecResult[Any]]]:
    """The appspec parser of each kind."""
    from engine.appspec import parse_ecs_appspec, parse_lambda_appspec, parse_server_appspec

    return {
        "server": parse_server_appspec,
        "lambda": parse_lambda_appspec,
        "ecs": parse_ecs_appspec,
    }


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a revision or an appspec file; nothing is executed",
        description="Check a revision (a folder, or a tar, tgz or zip archive) or an appspec "
        "file (Server, Lambda or ECS; YAML or JSON). Prints every error and warning with its "
        "file and line. Exit status 0 only when the appspec would be accepted.",
    )
    parser.add_argument("path", metavar="PATH", help="revision folder, archive, or appspec file")
    parser.add_argument(
        "-A",
        "--appspec-filename",
        default=None,
        metavar="NAME",
        help="the appspec's name inside a revision (default: appspec.yml)",
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(run=run)


def validate_path(path: Path, appspec_filename: str | None) -> tuple[str, str, AppSpecResult[Any]]:
    """(display name, kind, result) for a revision or an appspec file; raises BundleError."""
    from engine.appspec import detect_kind
    from engine.revision import open_bundle, read_appspec
    from engine.revision.references import missing_references, revision_paths

    if path.is_file() and path.suffix.lower() in APPSPEC_SUFFIXES:
        text = path.read_text(encoding="utf-8", errors="replace")
        display = str(path)
        kind = detect_kind(text)
        return display, kind, parsers()[kind](text, filename=display)
    bundle = open_bundle(path)
    source = read_appspec(bundle, appspec_filename or "appspec.yml")
    kind = detect_kind(source.text)
    result = parsers()[kind](source.text, filename=source.display_path)
    if kind == "server" and result.ok:  # what it names must be in the revision
        missing = missing_references(source, revision_paths(bundle))
        merged = sorted(result.diagnostics + missing, key=lambda d: (d.line, d.column))
        result = dataclasses.replace(result, diagnostics=tuple(merged))
    return source.display_path, kind, result


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine.revision import BundleError
    from tui.commands.output import print_diagnostics

    console = Console(highlight=False, soft_wrap=True)
    path = Path(args.path)
    try:
        display, kind, result = validate_path(path, args.appspec_filename)
    except (BundleError, OSError) as error:
        if args.output == "json":
            print(json.dumps({"path": str(path), "valid": False, "error": str(error)}))
        else:
            console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    if args.output == "json":
        print(
            json.dumps(
                {
                    "path": display,
                    "kind": kind,
                    "valid": result.ok,
                    "diagnostics": [d.__dict__ for d in result.diagnostics],
                },
                indent=2,
            )
        )
        return 0 if result.ok else 1
    print_diagnostics(console, result.diagnostics)
    errors, warnings = len(result.errors), len(result.warnings)
    summary = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    if result.ok:
        console.print(f"[green]✔ {escape(display)} is a valid {kind} appspec[/] ({summary})")
        return 0
    console.print(f"[red]✖ {escape(display)} is not a valid {kind} appspec[/] ({summary})")
    return 1
