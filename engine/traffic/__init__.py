"""Load balancers a deployment drives around BlockTraffic and AllowTraffic: the built-in
asyncio proxy (builtin.py), HAProxy through its runtime API (haproxy.py) and user commands
(command.py), all behind the `LoadBalancer` interface (model.py); `make_balancer` builds one
from a group's settings (factory.py). A balancer deploydeck owns lives in the group's balancer
host (host.py), a process that outlives deployments, driven through `HostedBalancer`
(hosted.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
    from engine.traffic.factory import (
        BalancerSpec,
        BuiltinSpec,
        CommandSpec,
        HAProxySpec,
        make_balancer,
    )
    from engine.traffic.model import (
        AllowResult,
        BlockResult,
        Health,
        HealthCheck,
        InstanceState,
        LoadBalancer,
        Service,
        Target,
        TrafficError,
        TrafficSettings,
    )

__all__ = [
    "AllowResult",
    "BalancerSpec",
    "BlockResult",
    "BuiltinSpec",
    "CommandSpec",
    "HAProxySpec",
    "Health",
    "HealthCheck",
    "InstanceState",
    "LoadBalancer",
    "Service",
    "Target",
    "TrafficError",
    "TrafficSettings",
    "make_balancer",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.traffic.factory": "BalancerSpec BuiltinSpec CommandSpec HAProxySpec make_balancer",
        "engine.traffic.model": (
            "AllowResult BlockResult Health HealthCheck InstanceState LoadBalancer Service "
            "Target TrafficError TrafficSettings"
        ),
    },
)
