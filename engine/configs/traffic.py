"""Traffic-shift schedules of Lambda and ECS configs: when the new version gets how much."""

from __future__ import annotations

from dataclasses import dataclass

from engine.configs.model import TrafficRouting, is_whole_number


@dataclass(frozen=True)
class TrafficStep:
    """At `at_seconds` after the shift starts, the new version gets `target_percent` of traffic."""

    at_seconds: int
    target_percent: int


def traffic_schedule(
    routing: TrafficRouting, *, extra_final_interval: bool = False
) -> list[TrafficStep]:
    """The weight steps of a traffic shift. Linear follows the strict reading (100 % is reached
    at k·I); `extra_final_interval` adds one more interval at 100 % before completion, matching
    SAM's "100 minutes for Linear10PercentEvery10Minutes". Canary and AllAtOnce ignore it."""
    if routing.type == "AllAtOnce":
        return [TrafficStep(0, 100)]
    percentage, interval = routing.percentage, routing.interval_minutes
    if not (is_whole_number(percentage) and 1 <= percentage <= 99):  # type: ignore[operator]
        raise ValueError(f"{routing.type} needs a percentage from 1 to 99, got {percentage!r}")
    if not (is_whole_number(interval) and interval >= 1):  # type: ignore[operator]
        raise ValueError(f"{routing.type} needs interval_minutes >= 1, got {interval!r}")
    assert percentage is not None and interval is not None
    interval_seconds = interval * 60
    if routing.type == "TimeBasedCanary":
        return [TrafficStep(0, percentage), TrafficStep(interval_seconds, 100)]
    if routing.type != "TimeBasedLinear":
        raise ValueError(f"unknown traffic routing type {routing.type!r}")
    steps = []
    k = 0
    while True:
        weight = min(100, (k + 1) * percentage)
        steps.append(TrafficStep(k * interval_seconds, weight))
        if weight == 100:
            break
        k += 1
    if extra_final_interval:
        steps.append(TrafficStep((k + 1) * interval_seconds, 100))
    return steps


def total_shift_seconds(routing: TrafficRouting, *, extra_final_interval: bool = False) -> int:
    """Seconds from the first traffic shift to completion (0 for AllAtOnce)."""
    return traffic_schedule(routing, extra_final_interval=extra_final_interval)[-1].at_seconds
