"""Lifecycle event names an appspec may attach hooks to, per platform."""

from __future__ import annotations

# The nine Server events the agent runs scripts for, in lifecycle order.
SERVER_HOOK_EVENTS: tuple[str, ...] = (
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)

# Server events the deployment performs itself; scripts cannot be attached to them. The value
# says where such a script belongs instead.
SERVER_RESERVED_EVENTS: dict[str, str] = {
    "Start": "ApplicationStart",
    "End": "ValidateService",
    "DownloadBundle": "BeforeInstall",
    "Install": "BeforeInstall or AfterInstall",
    "BlockTraffic": "BeforeBlockTraffic or AfterBlockTraffic",
    "AllowTraffic": "BeforeAllowTraffic or AfterAllowTraffic",
}

LAMBDA_HOOK_EVENTS: tuple[str, ...] = ("BeforeAllowTraffic", "AfterAllowTraffic")

ECS_HOOK_EVENTS: tuple[str, ...] = (
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)

LAMBDA_RESERVED_EVENTS: tuple[str, ...] = ("Start", "AllowTraffic", "End")
ECS_RESERVED_EVENTS: tuple[str, ...] = (
    "Start",
    "Install",
    "AllowTestTraffic",
    "AllowTraffic",
    "End",
)
