"""Which run strategy runs a deployment: one entry per kind (compute platform and deployment
style) the engine can run. A kind without an entry is refused when a deployment is created,
with what it still lacks; adding a platform is one strategy module and one entry here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.model import (
    ComputePlatform,
    DeploymentKind,
    DeploymentOption,
    DeploymentStyle,
    DeploymentType,
)

if TYPE_CHECKING:
    from engine.deployments.run import RunStrategy

SERVER_IN_PLACE = DeploymentKind(
    ComputePlatform.SERVER,
    DeploymentStyle(DeploymentType.IN_PLACE, DeploymentOption.WITHOUT_TRAFFIC_CONTROL),
)

SERVER_IN_PLACE_TRAFFIC = DeploymentKind(
    ComputePlatform.SERVER,
    DeploymentStyle(DeploymentType.IN_PLACE, DeploymentOption.WITH_TRAFFIC_CONTROL),
)

SERVER_BLUE_GREEN = DeploymentKind(
    ComputePlatform.SERVER,
    DeploymentStyle(DeploymentType.BLUE_GREEN, DeploymentOption.WITH_TRAFFIC_CONTROL),
)

# A Lambda group's style is CodeDeploy's (blue/green with traffic control) or left unwritten.
LAMBDA = DeploymentKind(
    ComputePlatform.LAMBDA,
    DeploymentStyle(DeploymentType.BLUE_GREEN, DeploymentOption.WITH_TRAFFIC_CONTROL),
)
LAMBDA_UNWRITTEN_STYLE = DeploymentKind(ComputePlatform.LAMBDA)
# An ECS group's style is likewise CodeDeploy's or left unwritten.
ECS = DeploymentKind(
    ComputePlatform.ECS,
    DeploymentStyle(DeploymentType.BLUE_GREEN, DeploymentOption.WITH_TRAFFIC_CONTROL),
)
ECS_UNWRITTEN_STYLE = DeploymentKind(ComputePlatform.ECS)

# Each kind's strategy as "module:function", imported when a deployment of that kind runs:
# a runner of an in-place deployment does not pay for the ECS and Lambda platforms.
STRATEGIES: dict[DeploymentKind, str] = {
    SERVER_IN_PLACE: "engine.deployments.inplace:start_in_place",
    SERVER_IN_PLACE_TRAFFIC: "engine.deployments.inplace:start_in_place_with_traffic",
    SERVER_BLUE_GREEN: "engine.deployments.bluegreen:start_blue_green",
    LAMBDA: "engine.deployments.lambda_run:start_lambda",
    LAMBDA_UNWRITTEN_STYLE: "engine.deployments.lambda_run:start_lambda",
    ECS: "engine.deployments.ecs_run:start_ecs",
    ECS_UNWRITTEN_STYLE: "engine.deployments.ecs_run:start_ecs",
}

# What a kind without a strategy still needs, for the error that refuses it.
_MISSING_PLATFORM: dict[ComputePlatform, str] = {}
_MISSING_STYLE: dict[DeploymentType | DeploymentOption, str] = {
    DeploymentType.BLUE_GREEN: "blue/green runs without traffic control (blue/green moves "
    "traffic through the group's load_balancer: write deployment_option: WITH_TRAFFIC_CONTROL)",
}


class NotSupported(Exception):
    """The engine has no run strategy for a deployment's kind; the message says what is
    missing and what to do."""


def unsupported_reason(kind: DeploymentKind) -> str | None:
    """Why deployments of `kind` cannot run yet, in a sentence; None when they can."""
    if kind in STRATEGIES:
        return None
    platform, style = kind.compute_platform, kind.style
    if platform in _MISSING_PLATFORM:  # its style is the platform's own: name the platform
        subject, missing = str(platform), [_MISSING_PLATFORM[platform]]
    else:
        subject = str(kind)
        parts = (style.deployment_type, style.deployment_option)
        missing = [_MISSING_STYLE[part] for part in parts if part in _MISSING_STYLE]
    runnable = ", ".join(str(k) for k in STRATEGIES)
    return (
        f"{subject} deployments are not supported yet: deploydeck lacks "
        f"{'; '.join(missing) or 'a run strategy for them'}. It runs {runnable}: change the "
        "application's compute_platform or the group's deployment_style"
    )


def strategy_for(kind: DeploymentKind) -> RunStrategy:
    """The strategy that runs deployments of `kind`; NotSupported when there is none."""
    reason = unsupported_reason(kind)
    if reason is not None:
        raise NotSupported(reason)
    module, name = STRATEGIES[kind].split(":")
    strategy: RunStrategy = getattr(importlib.import_module(module), name)
    return strategy
