"""Deployment configs, in one module per job: the values and predefined configs (model),
custom configs' rules (validation), traffic-shift schedules (traffic) and the batch
arithmetic of Server in-place deployments (batches). Callers import from here."""

from __future__ import annotations

from engine.configs.batches import (
    HEALTH_CONSTRAINTS,
    HEALTH_CONSTRAINTS_INVALID,
    INSTANCE_ORDER,
    MANUAL_STOP,
    NO_INSTANCES,
    BatchScheduler,
    DeploymentPlan,
    Outcome,
    Problem,
    minimum_healthy,
    order_instances,
    plan_deployment,
)
from engine.configs.model import (
    COMPUTE_PLATFORMS,
    DEFAULT_SERVER_CONFIG,
    PREDEFINED_CONFIGS,
    PREDEFINED_PREFIX,
    ComputePlatform,
    DeploymentConfig,
    MinimumHealthyHosts,
    TrafficRouting,
    get_config,
)
from engine.configs.traffic import TrafficStep, total_shift_seconds, traffic_schedule
from engine.configs.validation import (
    LAMBDA_MAX_SHIFT_MINUTES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    ConfigProblem,
    config_problems,
)

__all__ = [
    "COMPUTE_PLATFORMS",
    "DEFAULT_SERVER_CONFIG",
    "HEALTH_CONSTRAINTS",
    "HEALTH_CONSTRAINTS_INVALID",
    "INSTANCE_ORDER",
    "LAMBDA_MAX_SHIFT_MINUTES",
    "MANUAL_STOP",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "NO_INSTANCES",
    "PREDEFINED_CONFIGS",
    "PREDEFINED_PREFIX",
    "BatchScheduler",
    "ComputePlatform",
    "ConfigProblem",
    "DeploymentConfig",
    "DeploymentPlan",
    "MinimumHealthyHosts",
    "Outcome",
    "Problem",
    "TrafficRouting",
    "TrafficStep",
    "config_problems",
    "get_config",
    "minimum_healthy",
    "order_instances",
    "plan_deployment",
    "total_shift_seconds",
    "traffic_schedule",
]
