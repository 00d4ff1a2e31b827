"""Hooks ended together share /proc scans, even where one scan outlasts the sharing window."""

from __future__ import annotations

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
