"""What flows between the console's screens and its App: messages up, signal data down.

Screens ask the App for what only it may do (open a deployment, run an engine command, open
the new-deployment form or the watch) by posting these messages, which bubble up to it. The
App tells screens what changed through its signals (see `DeployDeckApp.fleet_changed` and
`watch_changed`), with a `FleetChange`; screens never walk the App's fields for it.
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
class OpenDeployment(Message):
    """Open a deployment's screen: live, or a replay of its journal."""

    deployment_id: str
    replay: bool = False


@dataclass
class RunEngineCommand(Message):
    """Run an engine command (made from the App's engine); `done` is said when it went
    through, a refusal is notified."""

    command: Callable[[Engine], Coroutine[Any, Any, Any]] = field(repr=False)
    done: str


@dataclass
class NewDeploymentWanted(Message):
    """Open the new-deployment form, for `group` (application, group) if given."""

    group: tuple[str, str] | None = None


class WatchFolderWanted(Message):
    """Start, change or stop watching a revision folder."""
