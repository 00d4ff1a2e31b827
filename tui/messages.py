"""What flows between the console's screens and its App: messages up, signal data down.

Screens ask the App to run engine commands by posting `RunEngineCommand`, which bubbles up to
it; they open other screens through the `Navigator` the App hands them. The App tells screens
what changed through its signals (`DeployDeckApp.fleet_changed` and `watch_changed`), with a
`FleetChange`; screens never walk the App's fields for it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from engine.api import Engine


@dataclass(frozen=True)
class FleetChange:
    """What the last flush found: deployments whose state changed, the ones whose engine
    process is gone, and whether a second has passed (running views tick their clocks)."""

    changed: frozenset[str] = frozenset()
    interrupted: frozenset[str] = frozenset()
    tick: bool = False
    dashboard: bool = False  # the dashboard's reads are due (they are spaced out)


@dataclass
class RunEngineCommand(Message):
    """Run an engine command (made from the App's engine); `done` is said when it went
    through, a refusal is notified."""

    command: Callable[[Engine], Coroutine[Any, Any, Any]] = field(repr=False)
    done: str


@dataclass(frozen=True)
class Navigator:
    """What screens may open, handed down by the App. Called at once, not posted: a key that
    follows (Enter then Esc, typed fast) finds the screen it opened on top."""

    open_deployment: Callable[..., None]  # (deployment_id, *, replay=False)
    new_deployment: Callable[[tuple[str, str] | None], None]
    watch_folder: Callable[[], None]
