"""The scheduler's contract beyond the arithmetic: strict batches, recording, stop, statuses,
messages, and the scheduling order of instances."""

from __future__ import annotations

import pytest

from engine.configs import (
    HEALTH_CONSTRAINTS,
    HEALTH_CONSTRAINTS_INVALID,
    MANUAL_STOP,
    NO_INSTANCES,
    PREDEFINED_CONFIGS,
    BatchScheduler,
    order_instances,
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


def test_next_batch_before_the_previous_batch_is_recorded_is_an_error() -> None:
    scheduler = BatchScheduler(host_count(8), hosts(10))
    assert scheduler.next_batch() == ("i1", "i2")
    scheduler.record("i1", True)
    with pytest.raises(RuntimeError, match=r"previous batch is still running.*i2"):
        scheduler.next_batch()
    scheduler.record("i2", True)
    assert scheduler.next_batch() == ("i3", "i4")


def test_a_failure_in_a_batch_does_not_cut_the_batch_short() -> None:
    # Strict batches: the batch already started runs to the end, then the next one shrinks.
    scheduler = BatchScheduler(HALF_AT_A_TIME, hosts(9))
    batch = scheduler.next_batch()
    scheduler.record(batch[0], False)
    assert scheduler.in_progress == batch[1:]
    assert not scheduler.finished
    for name in batch[1:]:
        scheduler.record(name, True)
    assert scheduler.batch_size == 3
    assert scheduler.next_batch() == ("i5", "i6", "i7")


@pytest.mark.parametrize("instance", ["i9", "i1", "nope"])
def test_record_only_accepts_running_instances(instance: str) -> None:
    scheduler = BatchScheduler(host_count(8), hosts(10))
    scheduler.next_batch()
    scheduler.record("i1", True)
    with pytest.raises(ValueError, match="not running"):
        scheduler.record(instance, True)


def test_duplicate_instances_are_refused() -> None:
    with pytest.raises(ValueError, match="more than once: a"):
        BatchScheduler(ALL_AT_ONCE, ["a", "b", "a"])


def test_traffic_shifting_configs_have_no_batches() -> None:
    with pytest.raises(ValueError, match="only Server configs"):
        BatchScheduler(PREDEFINED_CONFIGS["CodeDeployDefault.LambdaAllAtOnce"], ["a"])


def test_outcome_is_unknown_until_finished() -> None:
    scheduler = BatchScheduler(ONE_AT_A_TIME, hosts(2))
    with pytest.raises(RuntimeError, match="finished"):
        scheduler.outcome()
    scheduler.next_batch()
    with pytest.raises(RuntimeError, match="finished"):
        scheduler.outcome()


def test_statuses_follow_the_instance_through_the_deployment() -> None:
    scheduler = BatchScheduler(ONE_AT_A_TIME, hosts(3))
    assert [scheduler.status_of(n) for n in hosts(3)] == ["Pending"] * 3
    scheduler.next_batch()
    assert scheduler.status_of("i1") == "InProgress"
    scheduler.record("i1", True)
    scheduler.next_batch()
    scheduler.record("i2", False)
    assert [scheduler.status_of(n) for n in hosts(3)] == ["Succeeded", "Failed", "Skipped"]
    assert scheduler.finished
    assert scheduler.next_batch() == ()
    with pytest.raises(KeyError):
        scheduler.status_of("i4")


def test_skip_all_between_batches_skips_the_rest() -> None:
    scheduler = BatchScheduler(host_count(8), hosts(10))
    for name in scheduler.next_batch():
        scheduler.record(name, True)
    assert scheduler.skip_all() == tuple(hosts(10)[2:])
    assert scheduler.finished
    assert scheduler.pending == ()
    assert scheduler.next_batch() == ()
    outcome = scheduler.outcome()
    assert not outcome.succeeded
    assert outcome.error_code == MANUAL_STOP
    assert "8 instances not yet started were skipped" in outcome.message
    assert "2 succeeded and 0 failed" in outcome.message


def test_skip_all_during_a_batch_waits_for_the_running_instances() -> None:
    scheduler = BatchScheduler(host_count(8), hosts(10))
    scheduler.next_batch()
    skipped = scheduler.skip_all("ALARM_ACTIVE", "An alarm went off.")
    assert skipped == tuple(hosts(10)[2:])
    assert not scheduler.finished  # i1 and i2 are still running
    scheduler.record("i1", True)
    scheduler.record("i2", False)
    assert scheduler.finished
    assert scheduler.next_batch() == ()
    outcome = scheduler.outcome()
    assert (outcome.succeeded, outcome.error_code) == (False, "ALARM_ACTIVE")
    assert outcome.message.startswith("An alarm went off: ")  # the code is shown beside it


def test_skip_all_after_the_end_changes_nothing() -> None:
    run = drive(ALL_AT_ONCE, hosts(3), set())
    assert run.scheduler.skip_all() == ()
    assert run.scheduler.outcome().succeeded


def test_skip_all_after_a_health_failure_keeps_the_health_outcome() -> None:
    run = drive(ONE_AT_A_TIME, hosts(3), {"i1"})
    assert run.scheduler.skip_all() == ()
    assert run.scheduler.outcome().error_code == HEALTH_CONSTRAINTS


def test_failure_message_says_counts_minimum_and_condition() -> None:
    message = drive(fleet_percent(85), hosts(10), {"i3"}).scheduler.outcome().message
    assert message == (
        "Too many instance failures: 1 of 10 instances failed "
        "(2 succeeded, 7 skipped); the deployment needs at least 9 healthy (FLEET_PERCENT 85), "
        "so only the last instance may fail."
    )


def test_failure_message_for_several_tolerated_failures() -> None:
    message = drive(host_count(8), hosts(10), {"i3", "i6"}).scheduler.outcome().message
    assert "2 of 10 instances failed (4 succeeded, 4 skipped)" in message
    assert "at least 8 healthy (HOST_COUNT 8)" in message
    assert (
        "so before the final batch at most 1 failure can be absorbed "
        "(2 only when the last is in the final batch)" in message
    )


def test_failure_message_when_nothing_succeeds_under_all_at_once() -> None:
    message = drive(ALL_AT_ONCE, hosts(4), set(hosts(4))).scheduler.outcome().message
    assert "Too many instance failures" in message
    assert "all 4 instances failed" in message
    assert "at least one successful instance even when its minimum is 0" in message


def test_success_messages() -> None:
    assert drive(HALF_AT_A_TIME, hosts(9), set()).scheduler.outcome().message == (
        "All 9 instances succeeded; the deployment needed at least 5 healthy (FLEET_PERCENT 50)."
    )
    assert drive(ONE_AT_A_TIME, hosts(3), {"i3"}).scheduler.outcome().message == (
        "2 of 3 instances succeeded and 1 failed, which meets the minimum: the deployment "
        "needed at least 2 healthy (OneAtATime)."
    )


def test_start_problem_messages_name_the_condition() -> None:
    scheduler = BatchScheduler(fleet_percent(95), hosts(10))
    problem = scheduler.start_problem()
    assert problem is not None
    assert problem.error_code == HEALTH_CONSTRAINTS_INVALID
    assert "The minimum cannot be met at the start" in problem.message
    assert "FLEET_PERCENT 95 of 10 instances rounds up to a minimum of 10 healthy" in (
        problem.message
    )
    assert scheduler.outcome().message == problem.message
    assert scheduler.batches == ()

    empty = BatchScheduler(ONE_AT_A_TIME, [])
    assert empty.start_problem() is not None
    assert empty.outcome().error_code == NO_INSTANCES
    assert "no target instances" in empty.outcome().message


HEALTH = {
    "web1": "Current",
    "web2": "Old",
    "web3": "Unhealthy",
    "web4": "Unknown",
    "web5": "Old",
    "web6": "Unhealthy",
    "web7": "Current",
}


def test_order_instances_by_health_class_and_stable_within_one() -> None:
    ordered = order_instances(list(HEALTH), HEALTH.__getitem__)
    assert ordered == ["web3", "web6", "web4", "web2", "web5", "web1", "web7"]


def test_order_instances_rejects_an_unknown_health() -> None:
    with pytest.raises(ValueError, match="'Sick' is not one of Unhealthy, Unknown, Old, Current"):
        order_instances(["a"], lambda _: "Sick")
