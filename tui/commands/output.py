"""Shared CLI output: the commands' console, and appspec diagnostics as
`file:line:column: severity: ...` lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console

    from engine.appspec.diagnostics import Diagnostic


class _LazyConsole:
    """A Rich Console made on first use. Importing Rich takes longer than anything else a
    command does before its work starts, and create-deployment prints nothing until it has
    handed its deployment to the runner: this keeps the import out of that path."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)

    def made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console


def lazy_console(**options: Any) -> Console:
    """A Console with `options`, made (and Rich imported) when it is first used."""
    return cast("Console", _LazyConsole(**options))


# what makes Rich take a stream that is no terminal for one (or style it all the same)
RICH_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def plain_file(console: Console) -> IO[str] | None:
    """The console's stream when Rich would write plain text to it (no terminal, and none of
    RICH_TERMINAL_VARIABLES set), to be written to as it is, without Rich (or its import);
    None where Rich must render."""
    if isinstance(console, _LazyConsole) and console._console is None:
        if any(name in os.environ for name in RICH_TERMINAL_VARIABLES):
            return None
        stream = sys.stderr if console._options.get("stderr") else sys.stdout
        try:
            return None if stream.isatty() else stream
        except ValueError:  # closed
            return None
    return None if console.is_terminal else console.file


def real_console(console: Console) -> Console:
    """The Console itself, for what needs the object and not only its methods (Rich's Live
    uses it as a context manager, which a stand-in cannot be)."""
    return console.made() if isinstance(console, _LazyConsole) else console


def print_diagnostics(console: Console, diagnostics: Iterable[Diagnostic]) -> None:
    shown = list(diagnostics)
    if not shown:
        return  # and Rich need not be imported
    from rich.markup import escape

    for diagnostic in shown:
        colour = "red" if diagnostic.severity == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(diagnostic))}[/]")
