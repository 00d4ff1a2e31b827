"""Hooks ended together share /proc scans, even where one scan outlasts the sharing window."""

from __future__ import annotations

import asyncio
import itertools
import time

from engine.host import processes


class SlowClock:
    """time.monotonic for a busy machine: each reading is 0.1 s after the one before."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


def test_a_scan_slower_than_the_window_is_still_shared(monkeypatch) -> None:
    monkeypatch.setattr(processes.time, "monotonic", SlowClock())
    monkeypatch.setattr(processes, "_scans", {})
    reads: list[int] = []

    def read() -> dict:
        reads.append(1)
        return {}

    signalled = processes.time.monotonic()
    processes._scan("stat", max(signalled, processes._recent()), read)  # the first hook's
    processes._scan("stat", max(signalled, processes._recent()), read)  # the next one's
    assert len(reads) == 1


def test_a_scan_from_before_the_signal_is_never_reused(monkeypatch) -> None:
    monkeypatch.setattr(processes.time, "monotonic", SlowClock())
    monkeypatch.setattr(processes, "_scans", {})
    reads: list[int] = []

    def read() -> dict:
        reads.append(1)
        return {}

    processes._scan("stat", processes._recent(), read)
    signalled = processes.time.monotonic()
    processes._scan("stat", max(signalled, processes._recent()), read)
    assert len(reads) == 2


def test_back_to_back_shared_scans_keep_to_their_share_of_the_time(monkeypatch) -> None:
    """Hooks ending one after another (a large fleet) -> each shared /proc scan begins no
    sooner than the last one's duration / SCAN_SHARE after it, so scans serve more hooks
    each instead of filling the runner's time."""
    began: list[float] = []
    real = processes._read_process_table

    def costly_table() -> dict:
        began.append(time.monotonic())
        while time.monotonic() - began[-1] < 0.01:  # a scan of many processes: 10 ms of CPU
            pass
        return real()

    monkeypatch.setattr(processes, "_read_process_table", costly_table)
    monkeypatch.setattr(processes, "_last_shared_scan", (float("-inf"), 0.0))

    async def hooks_ending_one_after_another() -> None:
        for _ in range(4):
            await processes._shared_scan()

    asyncio.run(hooks_ending_one_after_another())
    gaps = [later - earlier for earlier, later in itertools.pairwise(began)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.99 * 0.01 / processes.SCAN_SHARE, gaps
