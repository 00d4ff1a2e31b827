"""Actual weight: the share of an alias's recent calls each version got, as measured by the
gateways that routed them, readable from any process sharing the state folder.

Each gateway keeps, per alias, the calls routed since the alias's weights last changed: at most
the last MEASURE_CALLS, within the last MEASURE_SECONDS. It writes them with the weights they
were routed by, at most every WRITE_SECONDS while calls come, to
`<state>/functions/<name>/routed/<pid>-<port>.json` (removed when it closes). A reader (a
deployment run) sums the files of live gateways written within the window whose weights are
those set now. So actual weight measures how the routers honour the weights set now, not a
blend of old and new. The window is real time whatever a run's time scale: it rates real calls.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MEASURE_CALLS = 200
MEASURE_SECONDS = 10.0
WRITE_SECONDS = 0.25


@dataclass(frozen=True)
class Measured:
    """The calls an alias routed in the window, per version, summed over every gateway."""

    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(self.counts.values())

    def share(self, version: str) -> float | None:
        """`version`'s fraction of the calls (None when there were none to measure)."""
        total = self.calls
        return self.counts.get(version, 0) / total if total else None


class AliasWindow:
    """The calls one alias routed since its weights last changed, bounded by count and age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.weights: dict[str, float] = {}
        self._calls: deque[tuple[float, str]] = deque(maxlen=MEASURE_CALLS)

    def record(self, weights: Mapping[str, float], version: str, calls: int = 1) -> None:
        """`calls` calls routed to `version` by `weights`, now."""
        if weights != self.weights:  # a shift: what was measured before no longer applies
            self.weights = dict(weights)
            self._calls.clear()
        now = self.clock()
        self._calls.extend((now, version) for _ in range(min(calls, MEASURE_CALLS)))

    def record_counts(self, weights: Mapping[str, float], counts: Mapping[str, int]) -> None:
        """Calls routed by `weights` since the last record, `counts` per version, interleaved
        as a weighted round robin would have sent them: when the window overflows it drops
        the oldest calls, and those must be a fair slice of the batch, not one version's."""
        order = interleaved(counts, MEASURE_CALLS)
        if not order:
            self.record(weights, "", 0)  # no calls: a shift still starts the window afresh
        for version in order:
            self.record(weights, version)

    def counts(self) -> dict[str, int]:
        horizon = self.clock() - MEASURE_SECONDS
        while self._calls and self._calls[0][0] < horizon:
            self._calls.popleft()
        counts: dict[str, int] = {}
        for _, version in self._calls:
            counts[version] = counts.get(version, 0) + 1
        return counts


def interleaved(counts: Mapping[str, int], limit: int) -> list[str]:
    """The last `limit` (or all) of `counts`' calls in an order where every prefix holds each
    version within one call of its share."""
    total = sum(n for n in counts.values() if n > 0)
    size = min(total, limit)
    if not size:
        return []
    scaled = {v: n * size / total for v, n in counts.items() if n > 0}
    emitted = dict.fromkeys(scaled, 0)
    order: list[str] = []
    for position in range(1, size + 1):
        # the version furthest behind its share of the first `position` calls
        version = max(scaled, key=lambda v: scaled[v] * position / size - emitted[v])
        emitted[version] += 1
        order.append(version)
    return order


def ledger_folder(functions_root: Path, name: str) -> Path:
    return functions_root / name / "routed"


def ledger_entry(window: AliasWindow) -> dict[str, object]:
    return {"weights": window.weights, "counts": window.counts()}


def write_ledger(path: Path, aliases: Mapping[str, Mapping[str, object]]) -> None:
    """One gateway's window counts for one function, replaced whole (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "aliases": aliases}))
    os.replace(temporary, path)


def measured(
    functions_root: Path, name: str, alias: str, weights: Mapping[str, float] | None = None
) -> Measured:
    """The alias's calls in the window, summed over the ledgers of live gateways; with
    `weights`, only calls routed by those weights (version -> share). A ledger not rewritten
    within the window (its gateway saw no call since) counts for nothing; its age is judged by
    the file's real modification time, as the writer is another process."""
    wanted = _rounded(weights) if weights is not None else None
    counts: dict[str, int] = {}
    folder = ledger_folder(functions_root, name)
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return Measured()
    wall = time.time()
    for path in paths:
        try:
            if wall - path.stat().st_mtime > MEASURE_SECONDS:
                continue
            data = json.loads(path.read_text())
            os.kill(int(data["pid"]), 0)
            entry = data["aliases"].get(alias, {})
            if wanted is not None and _rounded(entry["weights"]) != wanted:
                continue  # routed by weights set before: not a measure of those set now
            for version, n in entry["counts"].items():
                counts[str(version)] = counts.get(str(version), 0) + int(n)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # gone, half-written by an older writer, or its gateway died
    return Measured(counts)


def _rounded(weights: Mapping[str, float]) -> dict[str, float]:
    return {str(v): round(float(w), 4) for v, w in weights.items() if float(w) > 0}
