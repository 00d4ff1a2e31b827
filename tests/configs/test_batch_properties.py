"""Property test: for any fleet size, valid Server config and set of failing instances, the
scheduler keeps the minimum, never over-commits, accounts for every instance exactly once, and
ends with the outcome docs/codedeploy-service.md#minimum-healthy-hosts prescribes. An independent
transcription of the reference loop checks the exact batches."""

from __future__ import annotations

from fractions import Fraction
from math import ceil

from hypothesis import given
from hypothesis import strategies as st

from engine.configs import (
    HEALTH_CONSTRAINTS,
    HEALTH_CONSTRAINTS_INVALID,
    BatchScheduler,
    DeploymentConfig,
    plan_deployment,
)
from tests.configs.helpers import (
    ALL_AT_ONCE,
    HALF_AT_A_TIME,
    ONE_AT_A_TIME,
    fleet_percent,
    host_count,
    hosts,
)


@st.composite
def deployments(draw: st.DrawFn) -> tuple[DeploymentConfig, list[str], frozenset[str]]:
    count = draw(st.integers(1, 60))
    config = draw(
        st.one_of(
            st.sampled_from([ALL_AT_ONCE, HALF_AT_A_TIME, ONE_AT_A_TIME]),
            st.integers(0, count + 3).map(host_count),
            st.integers(0, 99).map(fleet_percent),
        )
    )
    names = hosts(count)
    failing = draw(st.frozensets(st.sampled_from(names)))
    return config, names, failing


def reference_minimum(config: DeploymentConfig, count: int) -> int:
    mhh = config.minimum_healthy_hosts
    assert mhh is not None
    if config.one_at_a_time:
        return max(count - 1, 0)
    if mhh.type == "FLEET_PERCENT":
        return ceil(Fraction(count * mhh.value, 100))
    return mhh.value


def reference_batches(
    config: DeploymentConfig, names: list[str], failing: frozenset[str]
) -> tuple[list[list[str]], list[str]]:
    """The loop of docs/codedeploy-service.md#minimum-healthy-hosts with strict batches (in flight
    is 0 whenever a batch starts)."""
    count, minimum = len(names), reference_minimum(config, len(names))
    if minimum >= count and not config.one_at_a_time:
        return [], list(names)
    pending, failures, batches = list(names), 0, []
    while pending:
        allowed = (
            (1 if failures == 0 else 0) if config.one_at_a_time else count - minimum - failures
        )
        if allowed <= 0:
            return batches, pending
        batch, pending = pending[:allowed], pending[allowed:]
        batches.append(batch)
        failures += len(failing.intersection(batch))
    return batches, []


@given(deployments())
def test_scheduler_keeps_the_minimum_and_accounts_for_every_instance(
    deployment: tuple[DeploymentConfig, list[str], frozenset[str]],
) -> None:
    config, names, failing = deployment
    count = len(names)
    scheduler = BatchScheduler(config, names)
    minimum = scheduler.minimum
    assert minimum == reference_minimum(config, count)
    plan = plan_deployment(config, names)

    batches: list[list[str]] = []
    while batch := scheduler.next_batch():
        failed_before = len(scheduler.failed)
        assert scheduler.in_progress == batch
        if config.one_at_a_time:
            assert len(batch) == 1
            assert failed_before == 0  # OneAtATime never starts after a failure
        else:
            # Healthy while the batch runs (N - failures - in flight) never drops below min.
            assert count - failed_before - len(batch) >= minimum
        assert len(batch) <= plan.max_concurrent
        batches.append(list(batch))
        for name in batch:
            scheduler.record(name, name not in failing)

    expected_batches, expected_skipped = reference_batches(config, names, failing)
    assert batches == expected_batches
    assert list(scheduler.skipped) == expected_skipped
    # Batches take instances in the order given.
    assert [n for b in batches for n in b] + list(scheduler.skipped) == names

    # Every instance ends exactly one of succeeded / failed / skipped.
    assert scheduler.finished
    assert scheduler.pending == () and scheduler.in_progress == ()
    ends = [*scheduler.succeeded, *scheduler.failed, *scheduler.skipped]
    assert sorted(ends) == sorted(names)
    assert set(scheduler.failed) <= failing
    assert failing.isdisjoint(scheduler.succeeded)

    outcome = scheduler.outcome()
    wins = len(scheduler.succeeded)
    assert outcome.succeeded is (outcome.error_code is None)
    if minimum >= count and not config.one_at_a_time:
        assert outcome.error_code == HEALTH_CONSTRAINTS_INVALID
        assert batches == []
    elif scheduler.skipped:
        assert outcome.error_code == HEALTH_CONSTRAINTS
    else:
        assert outcome.succeeded is (wins >= minimum and wins >= 1)
        if not outcome.succeeded:
            assert outcome.error_code == HEALTH_CONSTRAINTS
    # The plan's promises hold: a clean run succeeds, more failures than tolerated never do.
    if outcome.succeeded:
        assert len(scheduler.failed) <= plan.tolerated_failures
    if not failing and plan.start_problem is None:
        assert outcome.succeeded
        assert tuple(tuple(b) for b in batches) == plan.batches
