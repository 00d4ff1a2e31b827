"""Deployment configs as values: minimum healthy hosts (Server), traffic routing (Lambda,
ECS), the predefined configs and the lookup of a config by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from engine.model import ComputePlatform

COMPUTE_PLATFORMS: tuple[str, ...] = tuple(p.value for p in ComputePlatform)


@dataclass(frozen=True)
class MinimumHealthyHosts:
    """Server configs: HOST_COUNT or FLEET_PERCENT (users), MOST_CONCURRENCY (OneAtATime only)."""

    type: Literal["HOST_COUNT", "FLEET_PERCENT", "MOST_CONCURRENCY"]
    value: int


@dataclass(frozen=True)
class TrafficRouting:
    """Lambda/ECS configs: how traffic moves to the new version; intervals in minutes."""

    type: Literal["TimeBasedCanary", "TimeBasedLinear", "AllAtOnce"]
    percentage: int | None = None
    interval_minutes: int | None = None


@dataclass(frozen=True)
class DeploymentConfig:
    name: str
    compute_platform: ComputePlatform = ComputePlatform.SERVER
    minimum_healthy_hosts: MinimumHealthyHosts | None = None
    traffic_routing: TrafficRouting | None = None
    predefined: bool = False

    @property
    def one_at_a_time(self) -> bool:
        mhh = self.minimum_healthy_hosts
        return mhh is not None and mhh.type == "MOST_CONCURRENCY"


# --- predefined configurations ---------------------------------------------------------------

PREDEFINED_PREFIX = "CodeDeployDefault."
DEFAULT_SERVER_CONFIG = "CodeDeployDefault.OneAtATime"


def _server(name: str, type_: str, value: int) -> DeploymentConfig:
    return DeploymentConfig(
        name=PREDEFINED_PREFIX + name,
        compute_platform=ComputePlatform.SERVER,
        minimum_healthy_hosts=MinimumHealthyHosts(type_, value),  # type: ignore[arg-type]
        predefined=True,
    )


def _shifting(
    platform: str,
    name: str,
    type_: str,
    percentage: int | None = None,
    interval_minutes: int | None = None,
) -> DeploymentConfig:
    return DeploymentConfig(
        name=PREDEFINED_PREFIX + name,
        compute_platform=ComputePlatform(platform),
        traffic_routing=TrafficRouting(type_, percentage, interval_minutes),  # type: ignore[arg-type]
        predefined=True,
    )


_PREDEFINED_LIST: tuple[DeploymentConfig, ...] = (
    _server("AllAtOnce", "HOST_COUNT", 0),
    _server("HalfAtATime", "FLEET_PERCENT", 50),
    _server("OneAtATime", "MOST_CONCURRENCY", 1),
    _shifting("Lambda", "LambdaCanary10Percent5Minutes", "TimeBasedCanary", 10, 5),
    _shifting("Lambda", "LambdaCanary10Percent10Minutes", "TimeBasedCanary", 10, 10),
    _shifting("Lambda", "LambdaCanary10Percent15Minutes", "TimeBasedCanary", 10, 15),
    _shifting("Lambda", "LambdaCanary10Percent30Minutes", "TimeBasedCanary", 10, 30),
    # The reference's spelling: singular "Minute" here, plural for ECS below.
    _shifting("Lambda", "LambdaLinear10PercentEvery1Minute", "TimeBasedLinear", 10, 1),
    _shifting("Lambda", "LambdaLinear10PercentEvery2Minutes", "TimeBasedLinear", 10, 2),
    _shifting("Lambda", "LambdaLinear10PercentEvery3Minutes", "TimeBasedLinear", 10, 3),
    _shifting("Lambda", "LambdaLinear10PercentEvery10Minutes", "TimeBasedLinear", 10, 10),
    _shifting("Lambda", "LambdaAllAtOnce", "AllAtOnce"),
    _shifting("ECS", "ECSLinear10PercentEvery1Minutes", "TimeBasedLinear", 10, 1),
    _shifting("ECS", "ECSLinear10PercentEvery3Minutes", "TimeBasedLinear", 10, 3),
    _shifting("ECS", "ECSCanary10Percent5Minutes", "TimeBasedCanary", 10, 5),
    _shifting("ECS", "ECSCanary10Percent15Minutes", "TimeBasedCanary", 10, 15),
    _shifting("ECS", "ECSAllAtOnce", "AllAtOnce"),
)

PREDEFINED_CONFIGS: dict[str, DeploymentConfig] = {c.name: c for c in _PREDEFINED_LIST}

_NO_CUSTOM_CONFIGS: Mapping[str, DeploymentConfig] = MappingProxyType({})


def get_config(
    name: str, custom: Mapping[str, DeploymentConfig] = _NO_CUSTOM_CONFIGS
) -> DeploymentConfig | None:
    """The predefined config called `name`, else the custom one, else None. Custom names cannot
    start with "CodeDeployDefault.", so the two never collide."""
    return PREDEFINED_CONFIGS.get(name) or custom.get(name)


def is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
