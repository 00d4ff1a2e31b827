"""The client of a group's balancer host (host.py): a `LoadBalancer` whose balancer lives in
the host, so it outlives the deployment that drives it. `start` starts the host when none runs
and configures it; `close` leaves it running. Results come back as JSON and are decoded into
this package's dataclasses; a host that is gone is a TrafficError naming its log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.hosting.daemon import HostPlace, HostStartError, ensure_host
from engine.hosting.rpc import HostUnreachable, RemoteError, call
from engine.traffic.host import MODULE, settings_plain
from engine.traffic.model import (
    AllowResult,
    BlockResult,
    Health,
    InstanceState,
    Service,
    Target,
    TrafficError,
    TrafficSettings,
)

# A quick call (states, configure's own work aside) that takes longer means the host is stuck.
STATUS_SECONDS = 10.0


@dataclass(frozen=True)
class HostStatus:
    """What a running balancer host reports: its pid, the balancer's kind and listen address
    (None before a deployment configured it), the HAProxy it runs, and each instance."""

    pid: int
    kind: str | None
    address: tuple[str, int] | None
    haproxy_pid: int | None
    instances: tuple[InstanceState, ...]


def instance_state(plain: Mapping[str, Any]) -> InstanceState:
    return InstanceState(
        str(plain["name"]),
        Service(plain["service"]),
        Health(plain["health"]),
        plain.get("open_connections"),
        plain.get("requests_served"),
        str(plain.get("detail", "")),
    )


def host_status(plain: Mapping[str, Any]) -> HostStatus:
    address = plain.get("address")
    return HostStatus(
        int(plain["pid"]),
        plain.get("kind"),
        (str(address[0]), int(address[1])) if address else None,
        plain.get("haproxy_pid"),
        tuple(instance_state(s) for s in plain.get("instances", ())),
    )


async def host_call(place: HostPlace, what: str, method: str, **args: Any) -> Any:
    """One call to the host at `place`; its failures as TrafficError for an operator."""
    try:
        return await call(place.socket, method, **args)
    except RemoteError as error:
        if error.kind in ("TrafficError", "ValueError"):
            raise TrafficError(error.message) from None
        raise TrafficError(
            f"the balancer host of {what} failed: {error.kind}: {error.message}; its log: "
            f"{place.log}"
        ) from None
    except HostUnreachable as error:
        raise TrafficError(
            f"the balancer host of {what} is not answering ({error}): "
            f"traffic through its balancer has stopped. Its log: {place.log}; the next "
            "deployment starts it again"
        ) from None
    except TimeoutError:
        raise TrafficError(
            f"the balancer host of {what} is not answering (no answer in time): it is stuck. "
            f"`deploydeck balancer stop {what}` ends it; its log: {place.log}"
        ) from None


async def read_status(place: HostPlace, what: str) -> HostStatus | None:
    """The host's status, None when no host runs at `place`."""
    if place.pid() is None:
        return None
    return host_status(await host_call(place, what, "status", timeout=STATUS_SECONDS))


class HostedBalancer:
    """A `LoadBalancer` served by the group's balancer host at `place`."""

    def __init__(
        self,
        place: HostPlace,
        what: str,
        kind: str,
        listen: tuple[str, int],
        targets: Sequence[Target],
        settings: TrafficSettings,
        binary: str = "haproxy",
    ) -> None:
        self.place = place
        self.what = what  # "app/group", for messages
        self.kind = kind
        self.listen = listen
        self.targets = tuple(targets)
        self.settings = settings
        self.binary = binary
        self.status: HostStatus | None = None  # as `start` left it

    async def start(self) -> None:
        """Start the group's host unless it runs, and give it this deployment's instances and
        settings."""
        try:
            await ensure_host(self.place, MODULE)
        except HostStartError as error:
            raise TrafficError(f"the balancer host of {self.what} did not start: {error}") from None
        plain = await self._call(
            "configure",
            kind=self.kind,
            host=self.listen[0],
            port=self.listen[1],
            settings=settings_plain(self.settings),
            targets=[asdict(t) for t in self.targets],
            binary=self.binary,
        )
        self.status = host_status(plain)

    async def close(self) -> None:
        """Nothing: the host and its balancer outlive the deployment."""

    async def block(self, instance: str) -> BlockResult:
        plain = await self._call("block", instance=instance)
        return BlockResult(**plain)

    async def allow(self, instance: str) -> AllowResult:
        plain = await self._call("allow", instance=instance)
        return AllowResult(**plain)

    async def states(self) -> dict[str, InstanceState]:
        plain = await self._call("states", timeout=STATUS_SECONDS)
        return {s.name: s for s in map(instance_state, plain)}

    async def register(self, target: Target, group: str = "") -> None:
        await self._call("register", target=asdict(target), group=group)

    async def deregister(self, instance: str) -> BlockResult:
        return BlockResult(**(await self._call("deregister", instance=instance)))

    async def set_weights(self, weights: Mapping[str, int]) -> None:
        await self._call("set_weights", weights=dict(weights))

    async def _call(self, method: str, timeout: float | None = None, **args: Any) -> Any:
        return await host_call(self.place, self.what, method, timeout=timeout, **args)
