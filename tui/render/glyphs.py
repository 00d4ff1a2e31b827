"""Status as glyph and word, never colour alone (argo-rollouts' vocabulary)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.model import RevisionRef, Status

if TYPE_CHECKING:  # imported where a Text is made: the words and glyphs need no Rich
    from rich.text import Text

# status -> (glyph, short word for narrow cells, theme style)
STATUS_STYLES: dict[str, tuple[str, str, str]] = {
    Status.SUCCEEDED: ("✔", "ok", "green"),
    Status.FAILED: ("✖", "fail", "red"),
    Status.IN_PROGRESS: ("◌", "run", "cyan"),
    Status.PENDING: ("◷", "wait", "yellow"),
    Status.CREATED: ("◷", "new", "yellow"),
    Status.QUEUED: ("◷", "queued", "yellow"),
    Status.READY: ("◷", "ready", "yellow"),
    Status.BAKING: ("◌", "bake", "cyan"),
    Status.SKIPPED: ("-", "skip", "dim"),
    Status.STOPPED: ("■", "stop", "magenta"),  # not ॥, which operators read as Paused
    Status.UNKNOWN: ("?", "?", "yellow"),
    Status.HEALTHY: ("✔", "healthy", "green"),
    Status.UNHEALTHY: ("✖", "unhealthy", "red"),
}

EVENT_ABBREVIATIONS = {
    "ApplicationStop": "AppStop",
    "DownloadBundle": "Download",
    "BeforeInstall": "BeforeInst",
    "Install": "Install",
    "AfterInstall": "AfterInst",
    "ApplicationStart": "AppStart",
    "ValidateService": "Validate",
    "BeforeBlockTraffic": "BeforeBlock",
    "BlockTraffic": "Block",
    "AfterBlockTraffic": "AfterBlock",
    "BeforeAllowTraffic": "BeforeAllow",
    "AllowTraffic": "Allow",
    "AfterAllowTraffic": "AfterAllow",
}


def status(status_name: str) -> Text:
    """Glyph and full word: `✔ Succeeded`."""
    from rich.text import Text

    return Text(*status_piece(status_name))


def status_piece(status_name: str) -> tuple[str, str]:
    """Glyph and full word, and the style to show them in: (`✔ Succeeded`, `green`)."""
    glyph, _, style = STATUS_STYLES.get(status_name, ("•", status_name, ""))
    return f"{glyph} {status_name}", style


def short_status(status_name: str, seconds: float | None = None) -> Text:
    """Glyph, short word and elapsed time for narrow cells: `✔ ok 0.2s`."""
    from rich.text import Text

    glyph, word, style = STATUS_STYLES.get(status_name, ("•", status_name, ""))
    text = f"{glyph} {word}"
    if seconds is not None:
        text += f" {duration(seconds)}"
    return Text(text, style=style)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def short_time(value: float | None) -> str:
    """Month, day and time: what a history row needs."""
    return time.strftime("%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def clock_time(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def revision_label(ref: RevisionRef | None) -> str:
    """A revision's short name: the folder or archive it came from."""
    return Path(ref.location).name if ref is not None else ""
