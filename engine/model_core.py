"""The domain values a command needs without the rest of engine.model (its dataclasses cost a
start-up): deployment ids, the Server lifecycle's event lists and the compute platforms.
engine.model re-exports them; `deploydeck local` and the revision check import only this."""

from __future__ import annotations

import random
import string
from enum import StrEnum


def new_deployment_id(suffix: str = "") -> str:
    """`d-` and nine upper-case letters and digits, like CodeDeploy's, then `suffix`."""
    return "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9)) + suffix


# The Server in-place lifecycle without a load balancer
# (docs/codedeploy-service.md#server-in-place).
SERVER_IN_PLACE_EVENTS: tuple[str, ...] = (
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
# In-place with a load balancer: codedeploy-local's default event list
# (docs/codedeploy-agent.md#local-event-list).
SERVER_IN_PLACE_WITH_LB_EVENTS: tuple[str, ...] = (
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    *SERVER_IN_PLACE_EVENTS,
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)
# In-place with traffic control: the engine's BlockTraffic and AllowTraffic around the agent's
# events (a load balancer does them; without one they are Skipped).
SERVER_IN_PLACE_TRAFFIC_EVENTS: tuple[str, ...] = (
    "BeforeBlockTraffic",
    "BlockTraffic",
    "AfterBlockTraffic",
    *SERVER_IN_PLACE_EVENTS,
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
)
# Events whose failure ignoreApplicationStopFailures lets an instance survive.
STOP_EVENTS = frozenset({"ApplicationStop", "BeforeBlockTraffic", "AfterBlockTraffic"})


class ComputePlatform(StrEnum):
    """What an application deploys to: instances (Server), Lambda functions or ECS services."""

    SERVER = "Server"
    LAMBDA = "Lambda"
    ECS = "ECS"
