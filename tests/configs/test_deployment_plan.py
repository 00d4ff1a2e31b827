"""The preview shown before a deployment starts."""

from __future__ import annotations

import pytest

from engine.configs import (
    HEALTH_CONSTRAINTS_INVALID,
    NO_INSTANCES,
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


def test_plan_for_host_count_8_of_10() -> None:
    plan = plan_deployment(host_count(8), hosts(10))
    assert plan.minimum == 8
    assert plan.instances == tuple(hosts(10))
    assert plan.batches == (
        ("i1", "i2"),
        ("i3", "i4"),
        ("i5", "i6"),
        ("i7", "i8"),
        ("i9", "i10"),
    )
    assert (plan.max_concurrent, plan.tolerated_failures) == (2, 2)
    assert plan.last_instance_rule
    assert plan.start_problem is None
    assert plan.failure_rules() == [
        "Up to 2 at a time, keeping at least 8 of 10 instances healthy (HOST_COUNT 8).",
        "Batches shrink by one for each failure: after 1 failure, 1 at a time.",
        "A second failure stops the deployment unless it is on the last instance "
        "(or in the final batch): before the end, at most 1 failure can be absorbed.",
        "The deployment succeeds if at least 8 instances succeed: 2 may fail in all.",
        "Instances not yet started when the deployment fails or is stopped are Skipped.",
    ]


def test_plan_for_half_at_a_time_of_9() -> None:
    plan = plan_deployment(HALF_AT_A_TIME, hosts(9))
    assert [len(b) for b in plan.batches] == [4, 4, 1]
    assert (plan.minimum, plan.max_concurrent, plan.tolerated_failures) == (5, 4, 4)
    rules = plan.failure_rules()
    assert (
        "Batches shrink by one for each failure: after 1 failure, 3 at a time; after 3 "
        "failures, 1 at a time." in rules
    )
    assert "A fourth failure stops the deployment" in rules[2]
    assert plan.failures_allowed() == "4 may fail (the fourth only in the final batch)"


def test_plan_for_one_at_a_time() -> None:
    plan = plan_deployment(ONE_AT_A_TIME, hosts(5))
    assert plan.batches == tuple((name,) for name in hosts(5))
    assert (plan.minimum, plan.max_concurrent, plan.tolerated_failures) == (4, 1, 1)
    assert plan.last_instance_rule
    assert "The first failure stops the deployment unless it is on the last instance." in (
        plan.failure_rules()
    )


def test_plan_for_all_at_once() -> None:
    plan = plan_deployment(ALL_AT_ONCE, hosts(4))
    assert plan.batches == (tuple(hosts(4)),)
    assert (plan.minimum, plan.max_concurrent, plan.tolerated_failures) == (0, 4, 3)
    assert not plan.last_instance_rule
    assert plan.failure_rules()[:2] == [
        "All 4 instances are deployed at once (HOST_COUNT 0).",
        "The deployment succeeds if at least one instance succeeds; it fails only if all 4 fail.",
    ]


@pytest.mark.parametrize("config", [ALL_AT_ONCE, ONE_AT_A_TIME])
def test_plan_for_a_single_instance(config: DeploymentConfig) -> None:
    plan = plan_deployment(config, ["solo"])
    assert plan.batches == (("solo",),)
    assert (plan.minimum, plan.max_concurrent, plan.tolerated_failures) == (0, 1, 0)
    assert not plan.last_instance_rule
    assert plan.failure_rules()[0].startswith("The only instance is deployed and must succeed")


@pytest.mark.parametrize(
    ("config", "count", "code"),
    [
        (fleet_percent(95), 10, HEALTH_CONSTRAINTS_INVALID),
        (HALF_AT_A_TIME, 1, HEALTH_CONSTRAINTS_INVALID),
        (host_count(10), 10, HEALTH_CONSTRAINTS_INVALID),
        (ONE_AT_A_TIME, 0, NO_INSTANCES),
    ],
)
def test_plan_that_cannot_start(config: DeploymentConfig, count: int, code: str) -> None:
    plan = plan_deployment(config, hosts(count))
    assert plan.start_problem is not None
    assert plan.start_problem.error_code == code
    assert plan.batches == ()
    assert (plan.max_concurrent, plan.tolerated_failures, plan.last_instance_rule) == (0, 0, False)
    assert plan.failure_rules() == [plan.start_problem.message]
