"""Deadlines on the engine's clock, so a test's clock decides when a wait gives up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from engine.clock import Clock

T = TypeVar("T")


async def within(
    clock: Clock, seconds: float, awaitable: Awaitable[T], *, settle_on_cancel: bool = False
) -> T:
    """The result of `awaitable`, or TimeoutError once `seconds` pass on `clock` first (the
    awaitable is then cancelled and waited for). With `settle_on_cancel`, a cancelled caller
    also waits for the cancelled awaitable to end (a command alarm's process group ended)."""
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        if settle_on_cancel:
            await _settle(task)
        raise
    timer.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await _settle(task)
    raise TimeoutError


async def _settle(task: asyncio.Future[T]) -> None:
    """Wait for a cancelled task to end; its outcome no longer matters, so it is marked seen."""
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()


async def uninterrupted(awaitable: Awaitable[T]) -> T:
    """The result of `awaitable`, run to its end even when the caller is cancelled meanwhile
    (the cancellation is raised once it ends): for a few quick balancer commands that must not
    be left half done, such as registering an instance again when AllowTraffic begins."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise
