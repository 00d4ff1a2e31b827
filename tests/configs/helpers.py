"""Shared helpers for the config tests: configs by shorthand and a scripted scheduler run."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from engine.configs import (
    PREDEFINED_CONFIGS,
    BatchScheduler,
    DeploymentConfig,
    MinimumHealthyHosts,
)

ALL_AT_ONCE = PREDEFINED_CONFIGS["CodeDeployDefault.AllAtOnce"]
HALF_AT_A_TIME = PREDEFINED_CONFIGS["CodeDeployDefault.HalfAtATime"]
ONE_AT_A_TIME = PREDEFINED_CONFIGS["CodeDeployDefault.OneAtATime"]


def host_count(value: int) -> DeploymentConfig:
    return DeploymentConfig(
        f"HostCount{value}", minimum_healthy_hosts=MinimumHealthyHosts("HOST_COUNT", value)
    )


def fleet_percent(value: int) -> DeploymentConfig:
    return DeploymentConfig(
        f"FleetPercent{value}", minimum_healthy_hosts=MinimumHealthyHosts("FLEET_PERCENT", value)
    )


def hosts(count: int) -> list[str]:
    """Instance names i1..iN, numbered from 1 like the reference's examples."""
    return [f"i{k}" for k in range(1, count + 1)]


@dataclass(frozen=True)
class Run:
    scheduler: BatchScheduler
    batches: list[tuple[str, ...]]


def drive(config: DeploymentConfig, names: Sequence[str], failing: Collection[str]) -> Run:
    """Run a deployment to the end: every instance in `failing` fails, the others succeed."""
    scheduler = BatchScheduler(config, names)
    batches = []
    while batch := scheduler.next_batch():
        batches.append(batch)
        for name in batch:
            scheduler.record(name, name not in failing)
    assert scheduler.finished
    return Run(scheduler, batches)
