"""What every load balancer shares: its settings, the instances behind it, what it reports
about them, and the one interface a deployment drives (`LoadBalancer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, Self


class TrafficError(Exception):
    """A load balancer could not do what was asked; the message says what and what to do."""


@dataclass(frozen=True)
class HealthCheck:
    """How an instance's health is judged. Defaults are an AWS target group's: an HTTP GET of
    `path` every 30 s, 5 s to answer, healthy after 5 passes in a row, unhealthy after 2
    failures; 2xx and 3xx answers pass."""

    path: str = "/"
    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or any(c.isspace() for c in self.path):
            raise ValueError(
                f"health_check.path {self.path!r} must start with / and hold no spaces"
            )
        _positive("health_check.interval_seconds", self.interval_seconds)
        _positive("health_check.timeout_seconds", self.timeout_seconds)
        for name in ("healthy_threshold", "unhealthy_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"health_check.{name} must be a whole number of 1 or more")


@dataclass(frozen=True)
class TrafficSettings:
    """Timing of BlockTraffic and AllowTraffic. Block waits until the instance's open
    connections end, at most `deregistration_delay_seconds` (AWS default 300), then closes what
    is left; Allow waits until health checks pass, at most `allow_timeout_seconds` (CodeDeploy
    waits up to an hour)."""

    health_check: HealthCheck = field(default_factory=HealthCheck)
    deregistration_delay_seconds: float = 300.0
    allow_timeout_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.deregistration_delay_seconds != 0:
            _positive("deregistration_delay_seconds", self.deregistration_delay_seconds)
        _positive("allow_timeout_seconds", self.allow_timeout_seconds)

    @property
    def health_floor_seconds(self) -> float:
        """The least time health checks need to call a fresh instance healthy."""
        return self.health_check.healthy_threshold * self.health_check.interval_seconds


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number of seconds above 0, not {value}")


@dataclass(frozen=True)
class Target:
    """One instance behind the balancer: its name in the deployment group and the address
    its application listens on."""

    name: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a target needs a name")
        if not 0 < self.port < 65536:
            raise ValueError(f"target {self.name}: port {self.port} is not between 1 and 65535")


class Service(StrEnum):
    """Whether the balancer sends an instance traffic."""

    IN_SERVICE = "in service"
    DRAINING = "draining"  # no new connections; open ones may finish
    OUT_OF_SERVICE = "out of service"


class Health(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    INITIAL = "initial"  # checks under way after being allowed, not yet enough passes
    UNCHECKED = "unchecked"  # out of service: not checked


@dataclass(frozen=True)
class InstanceState:
    """One instance as the balancer sees it. Counts are None where the balancer cannot tell
    (a command balancer does not see connections)."""

    name: str
    service: Service
    health: Health
    open_connections: int | None = None
    requests_served: int | None = None
    detail: str = ""  # the last health check's outcome, e.g. "L7OK 200", "connection refused"

    @property
    def serving(self) -> bool:
        return self.service is Service.IN_SERVICE and self.health is Health.HEALTHY


@dataclass(frozen=True)
class BlockResult:
    """How BlockTraffic ended for one instance."""

    instance: str
    seconds: float  # by the balancer's clock
    drained: bool  # False: the deregistration delay passed and open connections were closed
    connections_closed: int = 0


@dataclass(frozen=True)
class AllowResult:
    instance: str
    seconds: float  # by the balancer's clock, until health checks passed


class LoadBalancer(Protocol):
    """The few commands a deployment gives a load balancer. All waits use the balancer's
    clock; errors are TrafficError with a message fit for an operator."""

    kind: str

    async def start(self) -> None:
        """Be ready to take the commands below (and, for a balancer deploydeck owns, traffic)."""
        ...

    async def block(self, instance: str) -> BlockResult:
        """Stop new traffic to `instance` and wait until its open connections end or the
        deregistration delay passes (then close them); it is out of service afterwards."""
        ...

    async def allow(self, instance: str) -> AllowResult:
        """Put `instance` back in service and wait until its health checks pass; TrafficError
        after the allow timeout, naming the last check's outcome."""
        ...

    async def states(self) -> dict[str, InstanceState]:
        """Every instance's state, by name, in the order the targets were given."""
        ...

    async def close(self) -> None:
        """Stop what deploydeck started for this balancer (nothing when attached)."""
        ...


class BalancerLifetime:
    """`async with balancer:` starts it and closes it again, for every balancer kind."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
