"""Shared CLI output: appspec diagnostics as `file:line:column: severity: ...` lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from engine.appspec.diagnostics import Diagnostic


def print_diagnostics(console: Console, diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        colour = "red" if diagnostic.severity == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(diagnostic))}[/]")
