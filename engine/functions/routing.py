"""Routing an alias's calls between its versions by weight, and measuring where they went.

The split is a smooth weighted round-robin (the nginx scheme), not a random draw: over any run
of calls the counts follow the weights as closely as whole calls can (90/10 gives exactly 9 of
each 10 calls to the primary), spread out rather than in bursts. So the "actual weight" a gauge
shows matches the set weight from the first few calls, a shift shows at once, and tests are
exact. AWS does not document how Lambda splits; a per-call random draw would be just as valid.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from engine.clock import Clock

from .meter import AliasWindow


class SmoothWeightedRoundRobin:
    """Each pick adds every version's weight to its credit, takes the version with the most
    credit (ties to the lowest-sorted name) and takes the total weight off its credit."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = {k: float(w) for k, w in sorted(weights.items()) if w > 0}
        if not self.weights:
            raise ValueError("at least one version needs a positive weight")
        self._total = sum(self.weights.values())
        self._credit = dict.fromkeys(self.weights, 0.0)

    def pick(self) -> str:
        for version, weight in self.weights.items():
            self._credit[version] += weight
        chosen = max(self._credit, key=lambda v: self._credit[v])
        self._credit[chosen] -= self._total
        return chosen


class RecentCounts:
    """Per-version call counts over the last `window` seconds of the clock."""

    def __init__(self, clock: Clock, window: float = 60.0, cap: int = 100_000) -> None:
        self.clock = clock
        self.window = window
        self._events: deque[tuple[float, str]] = deque(maxlen=cap)

    def record(self, version: str) -> None:
        self._events.append((self.clock.now(), version))

    def counts(self) -> dict[str, int]:
        horizon = self.clock.now() - self.window
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        counts: dict[str, int] = {}
        for _, version in self._events:
            counts[version] = counts.get(version, 0) + 1
        return counts

    def shares(self) -> dict[str, float]:
        """Each version's fraction of the calls in the window (empty when there were none)."""
        counts = self.counts()
        total = sum(counts.values())
        return {v: n / total for v, n in counts.items()} if total else {}


class AliasRouter:
    """The router of one alias: rebuilt when its weights change, counting every routed call
    (over `window` seconds, and in the actual-weight window since the last shift)."""

    def __init__(self, clock: Clock, window: float) -> None:
        self.recent = RecentCounts(clock, window)
        self.measured = AliasWindow()
        self._weights: dict[str, float] = {}
        self._swrr: SmoothWeightedRoundRobin | None = None

    def route(self, weights: Mapping[str, float]) -> str:
        wanted = {k: float(w) for k, w in weights.items() if w > 0}
        if wanted != self._weights or self._swrr is None:
            self._weights = wanted
            self._swrr = SmoothWeightedRoundRobin(wanted)
        version = self._swrr.pick()
        self.recent.record(version)
        self.measured.record(wanted, version)
        return version
