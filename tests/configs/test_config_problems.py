"""Validation of custom configurations (docs/codedeploy-service.md#custom-configurations and the
limits of docs/codedeploy-service.md#limits)."""

from __future__ import annotations

import pytest

from engine.configs import (
    ConfigProblem,
    DeploymentConfig,
    MinimumHealthyHosts,
    TrafficRouting,
    config_problems,
)


def server(value: int, type_: str = "HOST_COUNT", name: str = "Custom") -> DeploymentConfig:
    return DeploymentConfig(name, "Server", MinimumHealthyHosts(type_, value))  # type: ignore[arg-type]


def shifting(
    type_: str,
    percentage: int | None = None,
    interval: int | None = None,
    platform: str = "Lambda",
) -> DeploymentConfig:
    return DeploymentConfig(
        "Custom",
        platform,  # type: ignore[arg-type]
        traffic_routing=TrafficRouting(type_, percentage, interval),  # type: ignore[arg-type]
    )


def only_problem(config: DeploymentConfig) -> ConfigProblem:
    problems = config_problems(config)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize(
    "config",
    [
        server(0),
        server(300),
        server(0, "FLEET_PERCENT"),
        server(99, "FLEET_PERCENT"),
        server(50, "FLEET_PERCENT", name="a.b_c+d=e,f@g-h9"),
        server(1, name="x" * 100),
        shifting("TimeBasedCanary", 1, 1),
        shifting("TimeBasedCanary", 99, 2880),
        shifting("TimeBasedLinear", 10, 320),  # 9 * 320 = 2880 minutes
        shifting("TimeBasedLinear", 10, 5000, platform="ECS"),  # the 2880 limit is Lambda's
        shifting("AllAtOnce"),
        shifting("AllAtOnce", platform="ECS"),
    ],
)
def test_valid_custom_configs(config: DeploymentConfig) -> None:
    assert config_problems(config) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("x" * 101, "101 characters long; the limit is 100"),
        ("my config", "not allowed: ' '"),
        ("deploy/prod!", "not allowed: '!' '/'"),
        ("CodeDeployDefault.Mine", "reserved for the predefined configurations"),
    ],
)
def test_name_rules(name: str, fragment: str) -> None:
    problem = only_problem(server(0, name=name))
    assert problem.key == "name"
    assert fragment in problem.message
    assert problem.hint


def test_server_needs_minimum_healthy_hosts_and_no_traffic_routing() -> None:
    problem = only_problem(DeploymentConfig("Custom"))
    assert problem.key == "minimum_healthy_hosts"
    assert "needs minimum_healthy_hosts" in problem.message
    both = DeploymentConfig(
        "Custom",
        minimum_healthy_hosts=MinimumHealthyHosts("HOST_COUNT", 1),
        traffic_routing=TrafficRouting("AllAtOnce"),
    )
    problem = only_problem(both)
    assert problem.key == "traffic_routing"
    assert "Server config cannot have traffic routing" in problem.message


@pytest.mark.parametrize("platform", ["Lambda", "ECS"])
def test_lambda_and_ecs_need_traffic_routing_and_no_minimum(platform: str) -> None:
    problem = only_problem(DeploymentConfig("Custom", platform))  # type: ignore[arg-type]
    assert problem.key == "traffic_routing"
    assert f"A {platform} config needs traffic_routing" in problem.message
    both = DeploymentConfig(
        "Custom",
        platform,  # type: ignore[arg-type]
        minimum_healthy_hosts=MinimumHealthyHosts("HOST_COUNT", 1),
        traffic_routing=TrafficRouting("AllAtOnce"),
    )
    problem = only_problem(both)
    assert problem.key == "minimum_healthy_hosts"
    assert f"A {platform} config cannot have minimum_healthy_hosts" in problem.message


def test_unknown_compute_platform() -> None:
    problem = only_problem(DeploymentConfig("Custom", "Mainframe"))  # type: ignore[arg-type]
    assert problem.key == "compute_platform"
    assert "'Mainframe' is not one of Server, Lambda or ECS" in problem.message


def test_negative_host_count() -> None:
    problem = only_problem(server(-1))
    assert problem.key == "minimum_healthy_hosts.value"
    assert "HOST_COUNT -1 is negative" in problem.message


@pytest.mark.parametrize("value", [-1, 101, 150])
def test_fleet_percent_out_of_range(value: int) -> None:
    problem = only_problem(server(value, "FLEET_PERCENT"))
    assert problem.key == "minimum_healthy_hosts.value"
    assert f"FLEET_PERCENT {value} is out of range; it must be from 0 to 99." == problem.message


def test_fleet_percent_100_explains_why_and_the_host_count_alternative() -> None:
    problem = only_problem(server(100, "FLEET_PERCENT"))
    assert problem.key == "minimum_healthy_hosts.value"
    assert "FLEET_PERCENT 100 is not allowed" in problem.message
    assert "no instance could ever be taken offline" in problem.message
    assert "HOST_COUNT set to your fleet size minus one" in problem.hint
    assert "last instance" in problem.hint


def test_most_concurrency_is_reserved_for_one_at_a_time() -> None:
    problem = only_problem(server(1, "MOST_CONCURRENCY"))
    assert problem.key == "minimum_healthy_hosts.type"
    assert "reserved for CodeDeployDefault.OneAtATime" in problem.message
    assert "CodeDeployDefault.OneAtATime" in problem.hint


def test_unknown_minimum_type_and_non_integer_value() -> None:
    assert only_problem(server(1, "PERCENT")).key == "minimum_healthy_hosts.type"
    problem = only_problem(server(1.5, "FLEET_PERCENT"))  # type: ignore[arg-type]
    assert problem.key == "minimum_healthy_hosts.value"
    assert "not a whole number" in problem.message
    assert only_problem(server(True)).key == "minimum_healthy_hosts.value"  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["TimeBasedCanary", "TimeBasedLinear"])
@pytest.mark.parametrize("percentage", [None, 0, 100, -5])
def test_step_percentage_is_1_to_99(kind: str, percentage: int | None) -> None:
    problem = only_problem(shifting(kind, percentage, 5))
    assert problem.key == "traffic_routing.percentage"
    assert ("from 1 to 99" in problem.message) or ("needs a percentage" in problem.message)


@pytest.mark.parametrize("kind", ["TimeBasedCanary", "TimeBasedLinear"])
@pytest.mark.parametrize("interval", [None, 0, -1])
def test_step_interval_is_at_least_1_minute(kind: str, interval: int | None) -> None:
    problem = only_problem(shifting(kind, 10, interval))
    assert problem.key == "traffic_routing.interval_minutes"
    assert ("1 or more" in problem.message) or ("needs interval_minutes" in problem.message)


def test_both_step_problems_are_reported() -> None:
    keys = [p.key for p in config_problems(shifting("TimeBasedLinear", 0, 0))]
    assert keys == ["traffic_routing.percentage", "traffic_routing.interval_minutes"]


@pytest.mark.parametrize(
    ("percentage", "interval"), [(10, None), (None, 5), (10, 5)], ids=["pct", "interval", "both"]
)
def test_all_at_once_takes_neither_percentage_nor_interval(
    percentage: int | None, interval: int | None
) -> None:
    problems = config_problems(shifting("AllAtOnce", percentage, interval))
    expected = []
    if percentage is not None:
        expected.append("traffic_routing.percentage")
    if interval is not None:
        expected.append("traffic_routing.interval_minutes")
    assert [p.key for p in problems] == expected
    assert all("AllAtOnce moves all traffic in one step" in p.message for p in problems)


def test_unknown_traffic_routing_type() -> None:
    problem = only_problem(shifting("Blink", 10, 5))
    assert problem.key == "traffic_routing.type"


@pytest.mark.parametrize(
    ("kind", "percentage", "interval", "minutes"),
    [
        ("TimeBasedCanary", 10, 2881, 2881),
        ("TimeBasedLinear", 10, 321, 9 * 321),
        ("TimeBasedLinear", 1, 30, 99 * 30),
    ],
)
def test_lambda_shift_time_is_at_most_2880_minutes(
    kind: str, percentage: int, interval: int, minutes: int
) -> None:
    problem = only_problem(shifting(kind, percentage, interval))
    assert problem.key == "traffic_routing.interval_minutes"
    assert f"takes {minutes} minutes from the first traffic shift to the last" in problem.message
    assert "at most 2880 (48 hours)" in problem.message


def test_a_config_falsely_marked_predefined() -> None:
    fake = DeploymentConfig(
        "CodeDeployDefault.AllAtOnce",
        minimum_healthy_hosts=MinimumHealthyHosts("HOST_COUNT", 3),
        predefined=True,
    )
    assert only_problem(fake).key == "predefined"


def test_several_problems_at_once() -> None:
    config = DeploymentConfig(
        "CodeDeployDefault.bad name",
        minimum_healthy_hosts=MinimumHealthyHosts("FLEET_PERCENT", 100),
    )
    assert [p.key for p in config_problems(config)] == [
        "name",
        "name",
        "minimum_healthy_hosts.value",
    ]
