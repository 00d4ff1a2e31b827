"""Follow a deployment live until it ends (and the rollback it starts), as `--wait` does:
its journal entries as lines, or a live view on a terminal, then a summary."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator
from typing import IO, TYPE_CHECKING, cast

from engine import events as ev
from engine.api import Engine
from engine.model import DeploymentInfo, Status
from tui.commands.output import plain_file, real_console
from tui.commands.report import deployment_json, plain_text, print_lines, summary_lines
from tui.render.plain import PlainRenderer
from tui.render.state import FleetState

if TYPE_CHECKING:
    from rich.console import Console


def follow(
    engine: Engine,
    console: Console,
    deployment_id: str,
    output: str,
    *,
    judge_rollback: bool = False,
) -> int:
    """Follow a deployment and any rollback it starts; 0 only if it succeeded, or with
    `judge_rollback` (a stop-and-roll-back asked for) only if the rollback it started did."""
    plain = plain_file(console)  # no terminal: lines written as they are, Rich not imported
    final = asyncio.run(_follow(engine, console, deployment_id, output, plain))
    stalled = _stalled(engine, final)
    if output == "json":
        print(json.dumps(deployment_json(engine, final), indent=2))
    elif plain is not None:
        plain.write(plain_text(summary_lines(engine, final)))
        plain.flush()
    else:
        print_lines(console, summary_lines(engine, final))
    if stalled is not None:
        from rich.console import Console
        from rich.markup import escape

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[red]ERROR:[/] {escape(engine.interrupted_message(stalled))}")
        return 1
    if judge_rollback:
        rollback_id = final.rollback.rollback_deployment_id
        succeeded = rollback_id and engine.get_deployment(rollback_id).status == Status.SUCCEEDED
        return 0 if succeeded else 1
    return 0 if final.status == Status.SUCCEEDED else 1


def _stalled(engine: Engine, final: DeploymentInfo) -> DeploymentInfo | None:
    """The followed deployment, or the rollback it started, left unfinished by a dead engine."""
    shown = [final]
    if final.rollback.rollback_deployment_id:
        shown.append(engine.get_deployment(final.rollback.rollback_deployment_id))
    return next((d for d in shown if d.interrupted), None)


async def _follow(
    engine: Engine, console: Console, deployment_id: str, output: str, plain: IO[str] | None
) -> DeploymentInfo:
    state = FleetState()
    watched = {deployment_id}
    printer = _LinePrinter(console, plain)
    lines = PlainRenderer(printer.add, show_output=False)
    live_mode = output == "text" and plain is None and console.is_terminal
    live = None
    if live_mode:  # the live view, and the tables it draws with: a terminal's only
        from rich.live import Live

        from tui.render.live import render_deployment

        live = Live(console=real_console(console), refresh_per_second=4, transient=False)
    stop_sent = False
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    import signal

    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    gone = asyncio.Event()
    watching = asyncio.create_task(_watch_runners(engine, state, watched, gone))
    seen: dict[str, int] = {}  # the last entry taken of each deployment
    last_draw = 0.0

    def take(entry: ev.JournalEntry) -> bool:
        """Show one journal entry; True once every watched deployment is done."""
        nonlocal last_draw
        event = entry.event
        seen[event.deployment_id] = entry.seq
        if (
            isinstance(event, ev.RollbackLinked)
            and event.deployment_id in watched
            and event.rollback_deployment_id
        ):
            watched.add(event.rollback_deployment_id)
        if (
            isinstance(event, ev.DeploymentCreated)
            and event.deployment.rollback.rollback_triggering_deployment_id in watched
        ):
            watched.add(event.deployment_id)
        if event.deployment_id not in watched:
            return False
        view = state.apply(event)
        if live is None and output == "text":
            lines.render(event)
        elif live is not None and view is not None and time.monotonic() - last_draw > 0.2:
            live.update(render_deployment(view))
            last_draw = time.monotonic()
        return _all_done(state, watched)

    async def read() -> None:
        """Take every entry as it comes, until every watched deployment is done; the entries
        of one read of the journal are taken without a pass of the event loop each."""
        entries = cast(AsyncGenerator[ev.JournalEntry, None], engine.follow(deployment_id))
        async with contextlib.aclosing(entries):
            async for entry in entries:
                if take(entry):
                    return

    reading = asyncio.create_task(read())
    # one waiter for each event for the whole follow, not one per journal entry
    waiter = asyncio.ensure_future(interrupted.wait())
    died = asyncio.ensure_future(gone.wait())
    try:
        if live:
            live.start()
        while True:
            await asyncio.wait({reading, waiter, died}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                reading.result()
                break
            if died.done():
                # its engine died: show the last of what it journaled, then stop waiting
                await _cancelled(reading)
                async for late in engine.follow(deployment_id, follow=False):
                    if late.seq <= seen.get(late.event.deployment_id, 0):
                        continue
                    if take(late):
                        break
                break
            # Ctrl-C
            if stop_sent:
                break
            stop_sent = True
            interrupted.clear()
            waiter = asyncio.ensure_future(interrupted.wait())
            printer.flush()
            message = f"stopping {deployment_id} (Ctrl-C again to stop watching)"
            if live is not None:
                live.console.print(message)
            elif plain is not None:
                plain.write(message + "\n")
                plain.flush()
            else:
                console.print(message, style="yellow")
            for watched_id in list(watched):
                if not engine.get_deployment(watched_id).terminal:
                    await engine.stop_deployment(watched_id)
        if live is not None:
            for watched_id in sorted(watched, key=lambda i: i != deployment_id):
                if watched_id in state.deployments:
                    live.update(render_deployment(state.deployments[watched_id]))
    finally:
        waiter.cancel()
        died.cancel()
        await _cancelled(reading)
        printer.flush()
        loop.remove_signal_handler(signal.SIGINT)
        watching.cancel()
        if live is not None:
            live.stop()
    return engine.get_deployment(deployment_id)


class _LinePrinter:
    """Prints the follower's lines in batches: the lines added within PRINT_BATCH_SECONDS go
    out in one write. They go to the console's file as they are: the printer serves output
    that is no terminal (a terminal gets the live view), where Rich would style nothing and
    only cost the time of rendering each line."""

    def __init__(self, console: Console, file: IO[str] | None) -> None:
        self.console = console
        self.file = file  # where no terminal is: written to without Rich
        self.lines: list[str] = []
        self.timer: asyncio.TimerHandle | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= PRINT_BATCH_LINES:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(PRINT_BATCH_SECONDS, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.lines:
            text, self.lines = "\n".join(self.lines) + "\n", []
            out = self.file if self.file is not None else self.console.file
            out.write(text)
            out.flush()


PRINT_BATCH_SECONDS = 0.05  # how late a line may be printed
PRINT_BATCH_LINES = 200

RUNNER_CHECK_SECONDS = 0.5


async def _watch_runners(
    engine: Engine, state: FleetState, watched: set[str], gone: asyncio.Event
) -> None:
    """Set `gone` when a watched deployment that has not finished lost its engine process."""
    while not gone.is_set():
        await asyncio.sleep(RUNNER_CHECK_SECONDS)
        for deployment_id in list(watched):
            if not _done(state, deployment_id) and engine.runner_gone(deployment_id):
                gone.set()
                break


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait until it has ended (the journal reader closed with it)."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _done(state: FleetState, deployment_id: str) -> bool:
    """The deployment ended and, if it failed or stopped, said what its rollback is (the
    runner always journals that decision)."""
    view = state.deployments.get(deployment_id)
    if view is None or view.ended is None:
        return False
    return (
        view.status == Status.SUCCEEDED
        or view.rolls_back is not None
        or view.rollback_message is not None
    )


def _all_done(state: FleetState, watched: set[str]) -> bool:
    """Every watched deployment is done."""
    return all(_done(state, d) for d in watched)


__all__ = ["follow"]
