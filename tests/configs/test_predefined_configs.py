"""The predefined configurations of docs/codedeploy-service.md#predefined-configurations, with their
exact names."""

from __future__ import annotations

from engine.configs import (
    DEFAULT_SERVER_CONFIG,
    PREDEFINED_CONFIGS,
    DeploymentConfig,
    MinimumHealthyHosts,
    TrafficRouting,
    config_problems,
    get_config,
)

EXPECTED = {
    "CodeDeployDefault.AllAtOnce": ("Server", MinimumHealthyHosts("HOST_COUNT", 0), None),
    "CodeDeployDefault.HalfAtATime": ("Server", MinimumHealthyHosts("FLEET_PERCENT", 50), None),
    "CodeDeployDefault.OneAtATime": ("Server", MinimumHealthyHosts("MOST_CONCURRENCY", 1), None),
    "CodeDeployDefault.LambdaCanary10Percent5Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedCanary", 10, 5)),
    "CodeDeployDefault.LambdaCanary10Percent10Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedCanary", 10, 10)),
    "CodeDeployDefault.LambdaCanary10Percent15Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedCanary", 10, 15)),
    "CodeDeployDefault.LambdaCanary10Percent30Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedCanary", 10, 30)),
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute": (
        "Lambda", None, TrafficRouting("TimeBasedLinear", 10, 1)),
    "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedLinear", 10, 2)),
    "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedLinear", 10, 3)),
    "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes": (
        "Lambda", None, TrafficRouting("TimeBasedLinear", 10, 10)),
    "CodeDeployDefault.LambdaAllAtOnce": ("Lambda", None, TrafficRouting("AllAtOnce")),
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes": (
        "ECS", None, TrafficRouting("TimeBasedLinear", 10, 1)),
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes": (
        "ECS", None, TrafficRouting("TimeBasedLinear", 10, 3)),
    "CodeDeployDefault.ECSCanary10Percent5Minutes": (
        "ECS", None, TrafficRouting("TimeBasedCanary", 10, 5)),
    "CodeDeployDefault.ECSCanary10Percent15Minutes": (
        "ECS", None, TrafficRouting("TimeBasedCanary", 10, 15)),
    "CodeDeployDefault.ECSAllAtOnce": ("ECS", None, TrafficRouting("AllAtOnce")),
}  # fmt: skip


def test_every_predefined_config_with_its_exact_name_and_settings() -> None:
    assert set(PREDEFINED_CONFIGS) == set(EXPECTED)
    for name, (platform, minimum, routing) in EXPECTED.items():
        config = PREDEFINED_CONFIGS[name]
        assert config == DeploymentConfig(name, platform, minimum, routing, predefined=True)


def test_the_reference_spellings_of_one_minute() -> None:
    assert "CodeDeployDefault.LambdaLinear10PercentEvery1Minute" in PREDEFINED_CONFIGS
    assert "CodeDeployDefault.LambdaLinear10PercentEvery1Minutes" not in PREDEFINED_CONFIGS
    assert "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" in PREDEFINED_CONFIGS
    assert "CodeDeployDefault.ECSLinear10PercentEvery1Minute" not in PREDEFINED_CONFIGS


def test_the_default_server_config_is_one_at_a_time() -> None:
    assert DEFAULT_SERVER_CONFIG == "CodeDeployDefault.OneAtATime"
    assert PREDEFINED_CONFIGS[DEFAULT_SERVER_CONFIG].one_at_a_time
    assert not PREDEFINED_CONFIGS["CodeDeployDefault.HalfAtATime"].one_at_a_time


def test_predefined_configs_pass_validation() -> None:
    for config in PREDEFINED_CONFIGS.values():
        assert config_problems(config) == []


def test_get_config_finds_predefined_then_custom() -> None:
    custom = DeploymentConfig(
        "Nightly", minimum_healthy_hosts=MinimumHealthyHosts("FLEET_PERCENT", 75)
    )
    customs = {"Nightly": custom}
    assert (
        get_config("CodeDeployDefault.HalfAtATime", customs)
        is (PREDEFINED_CONFIGS["CodeDeployDefault.HalfAtATime"])
    )
    assert get_config("Nightly", customs) is custom
    assert get_config("Nightly", {}) is None
    assert get_config("CodeDeployDefault.Nope", customs) is None
    assert get_config("CodeDeployDefault.ECSAllAtOnce") is not None
