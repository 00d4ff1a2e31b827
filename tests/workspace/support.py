"""Helpers for the workspace tests: write a deploydeck.yml, load it, find the marked line."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from engine.appspec.diagnostics import Diagnostic
from engine.workspace import WorkspaceResult, load_workspace

MARK = "#<"


def write(folder: Path, text: str) -> Path:
    path = folder / "deploydeck.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(folder: Path, text: str, environ: Mapping[str, str] | None = None) -> WorkspaceResult:
    return load_workspace(write(folder, text), environ={} if environ is None else environ)


def marked_line(text: str) -> int:
    """The 1-based line carrying the `#<` marker (the line a diagnostic must point at)."""
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    found = [number for number, line in enumerate(lines, 1) if MARK in line]
    assert len(found) == 1, f"mark exactly one line with {MARK}"
    return found[0]


def only_error(result: WorkspaceResult) -> Diagnostic:
    assert result.workspace is None and not result.ok
    assert len(result.errors) == 1, "\n".join(str(d) for d in result.errors)
    return result.errors[0]


def clean(result: WorkspaceResult) -> None:
    """No errors and no warnings."""
    assert result.ok, "\n".join(str(d) for d in result.diagnostics)
    assert result.diagnostics == (), "\n".join(str(d) for d in result.diagnostics)
