"""The one clock the engine reads time from (ARCHITECTURE.md invariant 4).

Real by default; a demo runs at a speed factor; tests use a manual clock they advance. Hook
script timeouts are the agent's own (it runs on the host, in real time).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # asyncio is imported where a clock sleeps: reading the time needs none
    import asyncio


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, epoch seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


class ScaledClock:
    """Waits pass `speed` times faster (a demo's 5-minute canary in 5 seconds at speed 60);
    `now()` runs faster from the moment the clock was made."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin_wall = time.time()
        self._origin_mono = time.monotonic()

    def now(self) -> float:
        return self._origin_wall + (time.monotonic() - self._origin_mono) * self.speed

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds / self.speed)


class ManualClock:
    """A clock for tests: time moves only when `advance` is called; sleepers wake in order."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        import asyncio

        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + max(0.0, seconds), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper whose deadline passed, earliest first."""
        import asyncio

        target = self._now + seconds
        while True:
            due = sorted(
                ((d, f) for d, f in self._sleepers if d <= target and not f.done()),
                key=lambda item: item[0],
            )
            if not due:
                break
            deadline, future = due[0]
            self._now = max(self._now, deadline)
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]
            future.set_result(None)
            await asyncio.sleep(0)
        self._now = target

    @property
    def sleeping(self) -> int:
        return sum(1 for _, f in self._sleepers if not f.done())
