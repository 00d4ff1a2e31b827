"""Every documented example of docs/codedeploy-service.md#predefined-configurations and
docs/codedeploy-service.md#minimum-healthy-hosts, plus the edges, driven through the scheduler with
scripted failures: exact batches, skipped instances and outcome."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest

from engine.configs import (
    HEALTH_CONSTRAINTS,
    HEALTH_CONSTRAINTS_INVALID,
    NO_INSTANCES,
    DeploymentConfig,
    minimum_healthy,
)
from tests.configs.helpers import (
    ALL_AT_ONCE,
    HALF_AT_A_TIME,
    ONE_AT_A_TIME,
    drive,
    fleet_percent,
    host_count,
    hosts,
)


@dataclass(frozen=True)
class Example:
    id: str
    config: DeploymentConfig
    count: int
    failing: frozenset[int]  # instance numbers (1-based) that fail
    minimum: int
    batches: tuple[tuple[int, ...], ...]  # instance numbers per batch, as run
    skipped: tuple[int, ...]
    error_code: str | None  # None: Succeeded


def ex(
    id: str,
    config: DeploymentConfig,
    count: int,
    failing: set[int],
    minimum: int,
    batches: Sequence[Iterable[int]],
    skipped: Iterable[int] = (),
    error_code: str | None = None,
) -> Example:
    return Example(
        id,
        config,
        count,
        frozenset(failing),
        minimum,
        tuple(tuple(b) for b in batches),
        tuple(skipped),
        error_code,
    )


def singles(first: int, last: int) -> list[list[int]]:
    """One-instance batches first..last."""
    return [[k] for k in range(first, last + 1)]


R = range  # batches written as inclusive-exclusive ranges keep the table short

# fmt: off
# (id, config, N, failing instance numbers, minimum, batches as run, skipped, error code)
EXAMPLES = [
    # docs/codedeploy-service.md#predefined-configurations and
    # docs/codedeploy-service.md#minimum-healthy-hosts: 9 instances HalfAtATime -> min 5, batches of
    # at most 4, needs 5.
    ex("half-9-ok", HALF_AT_A_TIME, 9, set(), 5, [R(1, 5), R(5, 9), [9]]),
    ex("half-9-3-fail-then-one-at-a-time", HALF_AT_A_TIME, 9, {1, 2, 3}, 5,
       [R(1, 5), *singles(5, 9)]),
    ex("half-9-4th-failure-on-last", HALF_AT_A_TIME, 9, {1, 2, 3, 9}, 5,
       [R(1, 5), *singles(5, 9)]),
    ex("half-9-4th-failure-not-last", HALF_AT_A_TIME, 9, {1, 2, 3, 8}, 5,
       [R(1, 5), *singles(5, 8)], [9], HEALTH_CONSTRAINTS),
    ex("half-9-4-fail-in-first-batch", HALF_AT_A_TIME, 9, {1, 2, 3, 4}, 5,
       [R(1, 5)], R(5, 10), HEALTH_CONSTRAINTS),
    ex("half-9-4-fail-in-second-batch", HALF_AT_A_TIME, 9, {5, 6, 7, 8}, 5,
       [R(1, 5), R(5, 9)], [9], HEALTH_CONSTRAINTS),
    ex("half-9-4-fail-late", HALF_AT_A_TIME, 9, {6, 7, 8, 9}, 5,
       [R(1, 5), R(5, 9), [9]]),
    # 10 instances, FLEET_PERCENT 85 -> min 9, one at a time; the first failure fails unless last.
    ex("85pct-10-ok", fleet_percent(85), 10, set(), 9, singles(1, 10)),
    ex("85pct-10-last-fails", fleet_percent(85), 10, {10}, 9, singles(1, 10)),
    ex("85pct-10-first-fails", fleet_percent(85), 10, {1}, 9, [[1]], R(2, 11),
       HEALTH_CONSTRAINTS),
    ex("85pct-10-fifth-fails", fleet_percent(85), 10, {5}, 9, singles(1, 5), R(6, 11),
       HEALTH_CONSTRAINTS),
    # 10 instances, HOST_COUNT 8: two at a time; after one failure one at a time; a second
    # failure fails unless it is the last instance (or, more exactly, in the final batch).
    ex("hc8-10-ok", host_count(8), 10, set(), 8,
       [R(1, 3), R(3, 5), R(5, 7), R(7, 9), R(9, 11)]),
    ex("hc8-10-one-failure", host_count(8), 10, {3}, 8, [R(1, 3), R(3, 5), *singles(5, 10)]),
    ex("hc8-10-second-failure-last", host_count(8), 10, {3, 10}, 8,
       [R(1, 3), R(3, 5), *singles(5, 10)]),
    ex("hc8-10-second-failure-not-last", host_count(8), 10, {3, 6}, 8,
       [R(1, 3), R(3, 5), [5], [6]], R(7, 11), HEALTH_CONSTRAINTS),
    ex("hc8-10-both-fail-first-batch", host_count(8), 10, {1, 2}, 8,
       [R(1, 3)], R(3, 11), HEALTH_CONSTRAINTS),
    ex("hc8-10-both-fail-final-batch", host_count(8), 10, {9, 10}, 8,
       [R(1, 3), R(3, 5), R(5, 7), R(7, 9), R(9, 11)]),
    ex("hc8-10-three-fail", host_count(8), 10, {1, 5, 10}, 8,
       [R(1, 3), *singles(3, 5)], R(6, 11), HEALTH_CONSTRAINTS),
    # 95 % of 10 rounds up to 10: fails before any instance is touched.
    ex("95pct-10-invalid", fleet_percent(95), 10, set(), 10, [], R(1, 11),
       HEALTH_CONSTRAINTS_INVALID),
    # 9 with HOST_COUNT 6 -> at most 3 at a time.
    ex("hc6-9", host_count(6), 9, set(), 6, [R(1, 4), R(4, 7), R(7, 10)]),
    ex("hc6-9-one-failure", host_count(6), 9, {2}, 6,
       [R(1, 4), R(4, 6), R(6, 8), R(8, 10)]),
    # 9 with FLEET_PERCENT 40 -> min ceil(3.6) = 4, at most 5 at a time.
    ex("40pct-9", fleet_percent(40), 9, set(), 4, [R(1, 6), R(6, 10)]),
    ex("40pct-9-two-failures", fleet_percent(40), 9, {1, 2}, 4, [R(1, 6), R(6, 9), [9]]),
    # AllAtOnce: everything at once; Succeeded with at least one success, even with minimum 0.
    ex("all-5-ok", ALL_AT_ONCE, 5, set(), 0, [R(1, 6)]),
    ex("all-5-one-success", ALL_AT_ONCE, 5, {1, 2, 3, 4}, 0, [R(1, 6)]),
    ex("all-5-all-fail", ALL_AT_ONCE, 5, {1, 2, 3, 4, 5}, 0, [R(1, 6)], (),
       HEALTH_CONSTRAINTS),
    # OneAtATime: one at a time; a failure on the last instance is tolerated, any other fails.
    ex("one-5-ok", ONE_AT_A_TIME, 5, set(), 4, singles(1, 5)),
    ex("one-5-last-fails", ONE_AT_A_TIME, 5, {5}, 4, singles(1, 5)),
    ex("one-5-fourth-fails", ONE_AT_A_TIME, 5, {4}, 4, singles(1, 4), [5], HEALTH_CONSTRAINTS),
    ex("one-5-first-fails", ONE_AT_A_TIME, 5, {1}, 4, [[1]], R(2, 6), HEALTH_CONSTRAINTS),
    ex("one-2-last-fails", ONE_AT_A_TIME, 2, {2}, 1, singles(1, 2)),
    # One-instance groups: OneAtATime and AllAtOnce work (the instance must succeed);
    # HalfAtATime rounds up to a minimum of 1 = N and cannot start.
    ex("one-1-ok", ONE_AT_A_TIME, 1, set(), 0, [[1]]),
    ex("one-1-fails", ONE_AT_A_TIME, 1, {1}, 0, [[1]], (), HEALTH_CONSTRAINTS),
    ex("all-1-ok", ALL_AT_ONCE, 1, set(), 0, [[1]]),
    ex("all-1-fails", ALL_AT_ONCE, 1, {1}, 0, [[1]], (), HEALTH_CONSTRAINTS),
    ex("half-1-invalid", HALF_AT_A_TIME, 1, set(), 1, [], [1], HEALTH_CONSTRAINTS_INVALID),
    ex("half-2", HALF_AT_A_TIME, 2, set(), 1, [[1], [2]]),
    ex("half-2-last-fails", HALF_AT_A_TIME, 2, {2}, 1, [[1], [2]]),
    ex("half-2-first-fails", HALF_AT_A_TIME, 2, {1}, 1, [[1]], [2], HEALTH_CONSTRAINTS),
    # Edges: FLEET_PERCENT 0 and 99, HOST_COUNT above N, equal to N and N - 1, no instances.
    ex("0pct-4", fleet_percent(0), 4, set(), 0, [R(1, 5)]),
    ex("0pct-4-all-fail", fleet_percent(0), 4, {1, 2, 3, 4}, 0, [R(1, 5)], (),
       HEALTH_CONSTRAINTS),
    ex("99pct-10-invalid", fleet_percent(99), 10, set(), 10, [], R(1, 11),
       HEALTH_CONSTRAINTS_INVALID),
    ex("99pct-200", fleet_percent(99), 200, set(), 198,
       [R(k, k + 2) for k in range(1, 201, 2)]),
    ex("99pct-100-last-fails", fleet_percent(99), 100, {100}, 99, singles(1, 100)),
    ex("hc12-10-invalid", host_count(12), 10, set(), 12, [], R(1, 11),
       HEALTH_CONSTRAINTS_INVALID),
    ex("hc10-10-invalid", host_count(10), 10, set(), 10, [], R(1, 11),
       HEALTH_CONSTRAINTS_INVALID),
    ex("hc9-10-last-fails", host_count(9), 10, {10}, 9, singles(1, 10)),
    ex("hc1-1-invalid", host_count(1), 1, set(), 1, [], [1], HEALTH_CONSTRAINTS_INVALID),
    ex("hc0-1", host_count(0), 1, set(), 0, [[1]]),
    ex("none-one-at-a-time", ONE_AT_A_TIME, 0, set(), 0, [], (), NO_INSTANCES),
    ex("none-all-at-once", ALL_AT_ONCE, 0, set(), 0, [], (), NO_INSTANCES),
    ex("none-half-at-a-time", HALF_AT_A_TIME, 0, set(), 0, [], (), NO_INSTANCES),
    ex("none-hc3", host_count(3), 0, set(), 3, [], (), NO_INSTANCES),
]
# fmt: on


def names(numbers: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"i{k}" for k in numbers)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_documented_example(example: Example) -> None:
    instances = hosts(example.count)
    failing = set(names(tuple(example.failing)))
    run = drive(example.config, instances, failing)
    scheduler = run.scheduler

    assert scheduler.minimum == example.minimum
    assert run.batches == [names(b) for b in example.batches]
    assert scheduler.skipped == names(example.skipped)
    assert scheduler.pending == ()
    started = [name for batch in run.batches for name in batch]
    assert set(scheduler.failed) == failing & set(started)
    assert set(scheduler.succeeded) == set(started) - failing

    outcome = scheduler.outcome()
    assert outcome.error_code == example.error_code
    assert outcome.succeeded is (example.error_code is None)
    start_problem = scheduler.start_problem()
    if example.error_code in (NO_INSTANCES, HEALTH_CONSTRAINTS_INVALID):
        assert start_problem is not None
        assert start_problem.error_code == example.error_code
    else:
        assert start_problem is None


@pytest.mark.parametrize(
    ("count", "percent", "minimum"),
    [
        (9, 50, 5),
        (10, 85, 9),
        (10, 95, 10),
        (9, 40, 4),
        (1, 50, 1),
        (10, 0, 0),
        (10, 99, 10),
        # Where float arithmetic goes wrong: 100 * 0.07 == 7.000000000000001.
        (100, 7, 7),
        (100, 14, 14),
        (100, 28, 28),
        (50, 14, 7),
        (1000, 57, 570),
    ],
)
def test_fleet_percent_rounds_up_in_integer_arithmetic(
    count: int, percent: int, minimum: int
) -> None:
    assert minimum_healthy(fleet_percent(percent), count) == minimum


def test_one_at_a_time_minimum_is_all_but_one() -> None:
    assert [minimum_healthy(ONE_AT_A_TIME, n) for n in (0, 1, 2, 10)] == [0, 0, 1, 9]
