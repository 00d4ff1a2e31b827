"""What flows between the console's screens and its App: messages up, signal data down.

Screens ask the App to run engine commands by posting `RunEngineCommand`, which bubbles up to
it; they open other screens through the `Navigator` the App hands them, which also carries the
App's signals (`fleet_changed` with a `FleetChange`, `watch_changed`): screens never reach into
the App's fields. A worker of a screen or widget that fails posts `WorkerFailed` (through
`SaysWorkerFailures`), which the App shows and logs.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.signal import Signal
from textual.worker import Worker, WorkerState

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
    """What screens may open and listen to, handed down by the App. Its openers are called at
    once, not posted: a key that follows (Enter then Esc, typed fast) finds the screen it
    opened on top."""

    open_deployment: Callable[..., None]  # (deployment_id, *, replay=False)
    new_deployment: Callable[[tuple[str, str] | None], None]
    watch_folder: Callable[[], None]
    fleet_changed: Signal[FleetChange]  # published after each flush that found changes
    watch_changed: Signal[str]  # what the folder watch says now ("" when none runs)


@dataclass
class WorkerFailed(Message):
    """A worker below the App failed: the App says so and logs it (Worker.StateChanged does
    not bubble, so the node that ran the worker passes it up)."""

    what: str
    error: BaseException


class SaysWorkerFailures:
    """Mixed into a screen or widget that runs workers: each failure is posted up as
    `WorkerFailed`, never silent."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            what = worker.description or worker.name or "background work"
            event.worker.node.post_message(WorkerFailed(what, worker.error))
