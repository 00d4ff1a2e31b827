"""Traffic-shift schedules for Lambda and ECS
(docs/codedeploy-service.md#traffic-shifting-schedules)."""

from __future__ import annotations

import pytest

from engine.configs import (
    PREDEFINED_CONFIGS,
    TrafficRouting,
    TrafficStep,
    total_shift_seconds,
    traffic_schedule,
)


def routing(name: str) -> TrafficRouting:
    found = PREDEFINED_CONFIGS[f"CodeDeployDefault.{name}"].traffic_routing
    assert found is not None
    return found


def steps(*pairs: tuple[int, int]) -> list[TrafficStep]:
    return [TrafficStep(at, weight) for at, weight in pairs]


def test_canary_moves_p_percent_then_the_rest_after_the_interval() -> None:
    assert traffic_schedule(routing("LambdaCanary10Percent5Minutes")) == steps((0, 10), (300, 100))
    assert traffic_schedule(routing("ECSCanary10Percent15Minutes")) == steps((0, 10), (900, 100))
    # The extra interval is a linear-only knob.
    canary = TrafficRouting("TimeBasedCanary", 25, 2)
    assert traffic_schedule(canary, extra_final_interval=True) == steps((0, 25), (120, 100))


def test_linear_10_percent_every_minute_reaches_100_after_9_intervals() -> None:
    expected = steps(
        (0, 10), (60, 20), (120, 30), (180, 40), (240, 50),
        (300, 60), (360, 70), (420, 80), (480, 90), (540, 100),
    )  # fmt: skip
    assert traffic_schedule(routing("LambdaLinear10PercentEvery1Minute")) == expected
    assert traffic_schedule(routing("ECSLinear10PercentEvery1Minutes")) == expected
    assert total_shift_seconds(routing("ECSLinear10PercentEvery1Minutes")) == 540


def test_linear_with_one_more_interval_before_completion() -> None:
    schedule = traffic_schedule(
        routing("LambdaLinear10PercentEvery1Minute"), extra_final_interval=True
    )
    assert len(schedule) == 11
    assert schedule[-2:] == steps((540, 100), (600, 100))
    # SAM's "100 minutes" for Linear10PercentEvery10Minutes; 90 in the strict reading.
    every_10 = routing("LambdaLinear10PercentEvery10Minutes")
    assert total_shift_seconds(every_10) == 90 * 60
    assert total_shift_seconds(every_10, extra_final_interval=True) == 100 * 60


@pytest.mark.parametrize(
    ("percentage", "interval", "expected"),
    [
        (30, 2, [(0, 30), (120, 60), (240, 90), (360, 100)]),
        (33, 1, [(0, 33), (60, 66), (120, 99), (180, 100)]),
        (50, 3, [(0, 50), (180, 100)]),
        (99, 1, [(0, 99), (60, 100)]),
        (25, 4, [(0, 25), (240, 50), (480, 75), (720, 100)]),
    ],
)
def test_linear_with_steps_that_do_not_divide_100(
    percentage: int, interval: int, expected: list[tuple[int, int]]
) -> None:
    schedule = traffic_schedule(TrafficRouting("TimeBasedLinear", percentage, interval))
    assert schedule == steps(*expected)


@pytest.mark.parametrize("name", ["LambdaAllAtOnce", "ECSAllAtOnce"])
def test_all_at_once_is_a_single_step(name: str) -> None:
    assert traffic_schedule(routing(name)) == steps((0, 100))
    assert traffic_schedule(routing(name), extra_final_interval=True) == steps((0, 100))
    assert total_shift_seconds(routing(name)) == 0


@pytest.mark.parametrize(
    "bad",
    [
        TrafficRouting("TimeBasedLinear", None, 1),
        TrafficRouting("TimeBasedLinear", 0, 1),
        TrafficRouting("TimeBasedCanary", 10, None),
        TrafficRouting("TimeBasedCanary", 10, 0),
        TrafficRouting("Sideways", 10, 1),  # type: ignore[arg-type]
    ],
)
def test_invalid_routing_is_a_value_error(bad: TrafficRouting) -> None:
    with pytest.raises(ValueError):
        traffic_schedule(bad)
