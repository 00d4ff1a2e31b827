"""The Lambda-like platform: functions run from code folders by warm workers, published
versions and weighted aliases, an invoke gateway speaking Lambda's Invoke API, and hook
executions reporting through CodeDeploy's PutLifecycleEventHookExecutionStatus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
    from .gateway import FunctionGateway, InvokeResult, ServiceError, parse_function_name
    from .hooks import DEFAULT_HOOK_TIMEOUT_SECONDS, HookExecutions, HookStatusError
    from .registry import (
        LATEST,
        Alias,
        Function,
        FunctionRegistry,
        NotFound,
        RegistryError,
        VersionSpec,
    )
    from .routing import RecentCounts, SmoothWeightedRoundRobin

__all__ = [
    "DEFAULT_HOOK_TIMEOUT_SECONDS",
    "LATEST",
    "Alias",
    "Function",
    "FunctionGateway",
    "FunctionRegistry",
    "HookExecutions",
    "HookStatusError",
    "InvokeResult",
    "NotFound",
    "RecentCounts",
    "RegistryError",
    "ServiceError",
    "SmoothWeightedRoundRobin",
    "VersionSpec",
    "parse_function_name",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.functions.gateway": "FunctionGateway InvokeResult ServiceError parse_function_name",
        "engine.functions.hooks": "DEFAULT_HOOK_TIMEOUT_SECONDS HookExecutions HookStatusError",
        "engine.functions.registry": (
            "LATEST Alias Function FunctionRegistry NotFound RegistryError VersionSpec"
        ),
        "engine.functions.routing": "RecentCounts SmoothWeightedRoundRobin",
    },
)
