"""The actual-weight window fed by counts differenced between samples (an ECS listener's
per-target-group totals): when it overflows it must drop a fair slice of the oldest batch, so
the share it reports is the share the balancer really sent, within a call."""

from __future__ import annotations

from collections import Counter

from engine.functions.meter import MEASURE_CALLS, AliasWindow, interleaved


def smooth_round_robin(weights: dict[str, int], calls: int) -> list[str]:
    """The order a smooth weighted round robin (nginx's and HAProxy's) sends `calls` in."""
    current = dict.fromkeys(weights, 0)
    sent = []
    for _ in range(calls):
        for name, weight in weights.items():
            current[name] += weight
        chosen = max(current, key=lambda n: current[n])
        current[chosen] -= sum(weights.values())
        sent.append(chosen)
    return sent


def test_batches_of_counts_overflowing_the_window_keep_the_share_routed() -> None:
    """batches of 23 calls at 55/45 recorded as counts -> the window's share of the newer
    version is the share of the last MEASURE_CALLS calls really sent, within one call"""
    weights = {"blue": 45, "green": 55}
    sent = smooth_round_robin(weights, 23 * 40)
    window = AliasWindow(clock=lambda: 0.0)
    shares = {name: weight / 100 for name, weight in weights.items()}
    for start in range(0, len(sent), 23):
        window.record_counts(shares, Counter(sent[start : start + 23]))
        counts = window.counts()
        last = sent[max(0, start + 23 - MEASURE_CALLS) : start + 23]
        assert sum(counts.values()) == len(last)
        assert abs(counts["green"] - last.count("green")) <= 1, (start, counts)


def test_a_batch_larger_than_the_window_keeps_its_proportions() -> None:
    """one batch of 1000 calls at 70/30 -> the window holds MEASURE_CALLS calls at 70/30"""
    window = AliasWindow(clock=lambda: 0.0)
    window.record_counts({"a": 0.7, "b": 0.3}, {"a": 700, "b": 300})
    assert window.counts() == {"a": 140, "b": 60}


def test_every_prefix_of_an_interleaving_is_within_a_call_of_its_share() -> None:
    """interleaved({a:7, b:2, c:1}) -> each prefix holds each version within one of its share"""
    counts = {"a": 7, "b": 2, "c": 1, "gone": 0}
    order = interleaved(counts, 100)
    assert Counter(order) == {"a": 7, "b": 2, "c": 1}
    for length in range(1, len(order) + 1):
        seen = Counter(order[:length])
        for version in ("a", "b", "c"):
            assert abs(seen[version] - counts[version] * length / 10) < 1, (length, version)
    assert interleaved({}, 100) == [] and interleaved({"a": 0}, 100) == []
