"""Custom deployment configs checked against CodeDeploy's rules: each broken rule is a
ConfigProblem naming the key, what is wrong and what to write instead."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.configs.model import (
    COMPUTE_PLATFORMS,
    PREDEFINED_CONFIGS,
    PREDEFINED_PREFIX,
    DeploymentConfig,
    MinimumHealthyHosts,
    TrafficRouting,
    is_whole_number,
)
from engine.configs.traffic import total_shift_seconds

NAME_MAX_LENGTH = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9._+=,@-]+")
LAMBDA_MAX_SHIFT_MINUTES = 2880
_NAME_CHARSET = "letters, digits and . _ + = , @ -"


@dataclass(frozen=True)
class ConfigProblem:
    """One reason a custom config is rejected. `key` is the field's dotted path."""

    key: str
    message: str
    hint: str


def config_problems(config: DeploymentConfig) -> list[ConfigProblem]:
    """Every rule a custom config breaks (empty when it is valid). The predefined configs are
    valid by definition (they alone may use MOST_CONCURRENCY and the reserved prefix)."""
    if config.predefined:
        if PREDEFINED_CONFIGS.get(config.name) == config:
            return []
        return [
            ConfigProblem(
                "predefined",
                f"'{config.name}' is marked predefined but is not one of CodeDeploy's built-in "
                "configurations.",
                "Remove `predefined`, or use one of the CodeDeployDefault.* names unchanged.",
            )
        ]
    problems = _name_problems(config.name)
    platform = config.compute_platform
    if platform not in COMPUTE_PLATFORMS:
        problems.append(
            ConfigProblem(
                "compute_platform",
                f"The compute platform '{platform}' is not one of Server, Lambda or ECS.",
                "Set compute_platform to Server, Lambda or ECS.",
            )
        )
        return problems
    if platform == "Server":
        if config.traffic_routing is not None:
            problems.append(
                ConfigProblem(
                    "traffic_routing",
                    "A Server config cannot have traffic routing; it deploys to instances in "
                    "batches instead.",
                    "Remove traffic_routing and set minimum_healthy_hosts.",
                )
            )
        if config.minimum_healthy_hosts is None:
            problems.append(
                ConfigProblem(
                    "minimum_healthy_hosts",
                    "A Server config needs minimum_healthy_hosts, which decides how many "
                    "instances are deployed at once.",
                    "Add minimum_healthy_hosts, e.g. type FLEET_PERCENT with value 50, or "
                    "type HOST_COUNT with value 0 for all at once.",
                )
            )
        else:
            problems += _minimum_problems(config.minimum_healthy_hosts)
    else:
        if config.minimum_healthy_hosts is not None:
            problems.append(
                ConfigProblem(
                    "minimum_healthy_hosts",
                    f"A {platform} config cannot have minimum_healthy_hosts; it shifts traffic "
                    "instead of deploying to instances.",
                    "Remove minimum_healthy_hosts and set traffic_routing.",
                )
            )
        if config.traffic_routing is None:
            problems.append(
                ConfigProblem(
                    "traffic_routing",
                    f"A {platform} config needs traffic_routing, which decides how traffic "
                    "moves to the new version.",
                    "Add traffic_routing with type TimeBasedCanary, TimeBasedLinear or AllAtOnce.",
                )
            )
        else:
            problems += _routing_problems(config.traffic_routing, platform)
    return problems


def _name_problems(name: object) -> list[ConfigProblem]:
    hint = f"Use 1 to {NAME_MAX_LENGTH} characters: {_NAME_CHARSET}."
    if not isinstance(name, str) or name == "":
        return [ConfigProblem("name", "The configuration name is empty.", hint)]
    problems = []
    if len(name) > NAME_MAX_LENGTH:
        problems.append(
            ConfigProblem(
                "name",
                f"The configuration name is {len(name)} characters long; the limit is "
                f"{NAME_MAX_LENGTH}.",
                hint,
            )
        )
    bad = sorted({ch for ch in name if not NAME_PATTERN.fullmatch(ch)})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        problems.append(
            ConfigProblem(
                "name",
                f"The configuration name '{name}' contains characters that are not allowed: "
                f"{shown}.",
                hint,
            )
        )
    if name.startswith(PREDEFINED_PREFIX):
        problems.append(
            ConfigProblem(
                "name",
                f"The configuration name '{name}' starts with '{PREDEFINED_PREFIX}', which is "
                "reserved for the predefined configurations.",
                "Choose a name without that prefix, or use the predefined configuration itself.",
            )
        )
    return problems


def _minimum_problems(mhh: MinimumHealthyHosts) -> list[ConfigProblem]:
    if mhh.type == "MOST_CONCURRENCY":
        return [
            ConfigProblem(
                "minimum_healthy_hosts.type",
                "MOST_CONCURRENCY is reserved for CodeDeployDefault.OneAtATime; custom configs "
                "cannot use it.",
                "Use the config CodeDeployDefault.OneAtATime, or HOST_COUNT with your fleet "
                "size minus one.",
            )
        ]
    if mhh.type not in ("HOST_COUNT", "FLEET_PERCENT"):
        return [
            ConfigProblem(
                "minimum_healthy_hosts.type",
                f"The minimum healthy hosts type '{mhh.type}' is not HOST_COUNT or FLEET_PERCENT.",
                "Use HOST_COUNT (a number of instances) or FLEET_PERCENT (a percentage of "
                "the fleet, rounded up).",
            )
        ]
    value = mhh.value
    key = "minimum_healthy_hosts.value"
    if not is_whole_number(value):
        return [
            ConfigProblem(
                key,
                f"The minimum healthy hosts value {value!r} is not a whole number.",
                "Use a whole number such as 0, 1 or 50.",
            )
        ]
    if mhh.type == "HOST_COUNT" and value < 0:
        return [
            ConfigProblem(
                key,
                f"HOST_COUNT {value} is negative; a number of healthy instances is 0 or more.",
                "Use 0 to deploy to every instance at once, or the number of instances that "
                "must stay healthy.",
            )
        ]
    if mhh.type == "FLEET_PERCENT" and value == 100:
        return [
            ConfigProblem(
                key,
                "FLEET_PERCENT 100 is not allowed: if every instance had to stay healthy, no "
                "instance could ever be taken offline to deploy to it, so the deployment could "
                "never start.",
                "Use FLEET_PERCENT 99, or HOST_COUNT set to your fleet size minus one, to "
                "deploy one instance at a time; even then a failure on the last instance is "
                "tolerated.",
            )
        ]
    if mhh.type == "FLEET_PERCENT" and not 0 <= value < 100:
        return [
            ConfigProblem(
                key,
                f"FLEET_PERCENT {value} is out of range; it must be from 0 to 99.",
                "Use 0 to deploy to every instance at once, 50 for half at a time, or up to 99.",
            )
        ]
    return []


def _routing_problems(routing: TrafficRouting, platform: str) -> list[ConfigProblem]:
    if routing.type == "AllAtOnce":
        problems = []
        for field_name in ("percentage", "interval_minutes"):
            if getattr(routing, field_name) is not None:
                problems.append(
                    ConfigProblem(
                        f"traffic_routing.{field_name}",
                        f"AllAtOnce moves all traffic in one step and takes no {field_name}.",
                        f"Remove {field_name}, or use TimeBasedCanary or TimeBasedLinear.",
                    )
                )
        return problems
    if routing.type not in ("TimeBasedCanary", "TimeBasedLinear"):
        return [
            ConfigProblem(
                "traffic_routing.type",
                f"The traffic routing type '{routing.type}' is not TimeBasedCanary, "
                "TimeBasedLinear or AllAtOnce.",
                "Use TimeBasedCanary (one step, then the rest), TimeBasedLinear (equal steps) "
                "or AllAtOnce.",
            )
        ]
    step = "canary" if routing.type == "TimeBasedCanary" else "linear"
    problems = []
    percentage = routing.percentage
    if not (is_whole_number(percentage) and 1 <= percentage <= 99):  # type: ignore[operator]
        problems.append(
            ConfigProblem(
                "traffic_routing.percentage",
                f"The {step} percentage {percentage!r} must be a whole number from 1 to 99."
                if percentage is not None
                else f"A {routing.type} config needs a percentage for each {step} step.",
                "Set percentage to the share of traffic moved per step, e.g. 10.",
            )
        )
    interval = routing.interval_minutes
    if not (is_whole_number(interval) and interval >= 1):  # type: ignore[operator]
        problems.append(
            ConfigProblem(
                "traffic_routing.interval_minutes",
                f"The {step} interval {interval!r} must be a whole number of minutes, 1 or more."
                if interval is not None
                else f"A {routing.type} config needs interval_minutes between steps.",
                "Set interval_minutes to the wait between traffic steps, e.g. 5.",
            )
        )
    if not problems and platform == "Lambda":
        minutes = total_shift_seconds(routing) // 60
        if minutes > LAMBDA_MAX_SHIFT_MINUTES:
            problems.append(
                ConfigProblem(
                    "traffic_routing.interval_minutes",
                    f"This {step} schedule takes {minutes} minutes from the first traffic "
                    f"shift to the last; Lambda allows at most {LAMBDA_MAX_SHIFT_MINUTES} "
                    "(48 hours).",
                    "Use a shorter interval_minutes or, for linear, a larger percentage.",
                )
            )
    return problems
