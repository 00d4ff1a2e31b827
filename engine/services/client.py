"""Reaching a service's host (host.py) from a deployment run or a CLI command: `ensure` starts
it unless it runs, then the same operations a ServiceRuntime has, each a call to the host. A
host that went away is a `HostLost` naming its log; an error the host raised comes back as the
ServiceError (or TaskSetStartError) it was."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.hosting.daemon import HostPlace, HostStartError, ensure_host, stop_host
from engine.hosting.rpc import HostUnreachable, RemoteError, call
from engine.services.model import (
    Service,
    ServiceError,
    TaskDefinition,
    TaskSetInfo,
    TaskSetStartError,
)
from engine.services.runtime import stop_leftover_tasks
from engine.services.state import SERVICE_FILE, load_service_state
from engine.services.tasks import StartPolicy
from engine.traffic.model import TrafficSettings

HOST_MODULE = "engine.services.host"
START_TIMEOUT = 30.0  # seconds for a new host to answer (the machine may be busy)
STATUS_SECONDS = 10.0  # a host that takes longer to describe its service is stuck


class HostLost(ServiceError):
    """The service's host is not there any more (killed, or stopped by an operator)."""


@dataclass(frozen=True)
class HostView:
    """What a running host says of its service."""

    pid: int
    service: str
    production: tuple[str, int]
    test: tuple[str, int] | None
    production_weights: dict[str, int]
    test_weights: dict[str, int]
    restoring: bool
    restore_error: str
    task_sets: tuple[TaskSetInfo, ...]


@dataclass(frozen=True)
class Routed:
    """A listener's weights per target group and the requests it answered per group so far."""

    weights: dict[str, int]
    served: dict[str, int]


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if value else None


class ServiceClient:
    """The host of the service whose state folder is `folder`."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        self.place = HostPlace(folder)
        self.name = name or self.place.folder.name
        self.pid: int | None = None
        self.production_address: tuple[str, int] = ("", 0)
        self.test_address: tuple[str, int] | None = None

    @property
    def log(self) -> Path:
        return self.place.log

    async def ensure(
        self, service: Service, traffic: TrafficSettings, policy: StartPolicy
    ) -> HostView:
        """The service's host, started unless one runs, with these timings from now on. A host
        whose listeners are not the ones `service` asks for is replaced while it has no
        replacement task set (ServiceError otherwise). HostStartError when it cannot start."""
        # imported here: the package imports this module, and `python -m engine.services.host`
        # warns when the package's import already ran host.py
        from engine.services.host import settings_json

        args = [
            "--service",
            service.name,
            "--production-port",
            str(service.production_port),
            "--listen-host",
            service.host,
            "--settings",
            json.dumps(settings_json(traffic, policy)),
        ]
        if service.test_port is not None:
            args += ["--test-port", str(service.test_port)]
        self.pid = await ensure_host(self.place, HOST_MODULE, args, START_TIMEOUT)
        view = await self.describe()
        if not _listeners_fit(view, service):
            if any(t.status == "ACTIVE" for t in view.task_sets):
                raise ServiceError(
                    f"service {service.name} listens on {_listeners(view)}, not where its "
                    "deployment group now asks; roll back or complete the deployment in "
                    "progress, then deploy again"
                )
            await stop_service(self.place.folder)
            self.pid = await ensure_host(self.place, HOST_MODULE, args, START_TIMEOUT)
            view = await self.describe()
        await self._call("configure", settings=settings_json(traffic, policy))
        return view

    async def describe(self, timeout: float | None = None) -> HostView:
        data = await self._call("describe", timeout=timeout)
        production = _address(data["production"])
        assert production is not None
        self.production_address, self.test_address = production, _address(data["test"])
        return HostView(
            pid=self.pid or self.place.pid() or 0,
            service=data["service"],
            production=production,
            test=self.test_address,
            production_weights=dict(data["productionWeights"]),
            test_weights=dict(data["testWeights"]),
            restoring=bool(data["restoring"]),
            restore_error=str(data["restoreError"]),
            task_sets=tuple(TaskSetInfo.from_json(t) for t in data["taskSets"]),
        )

    async def restore(self) -> list[TaskSetInfo]:
        """The task sets, once the primary a newly started host starts again is healthy (a
        ServiceError naming why when it cannot start)."""
        return [TaskSetInfo.from_json(t) for t in await self._call("restore")]

    async def task_sets(self) -> list[TaskSetInfo]:
        return [TaskSetInfo.from_json(t) for t in await self._call("task_sets")]

    async def create_primary(self, definition: TaskDefinition) -> TaskSetInfo:
        return TaskSetInfo.from_json(
            await self._call("create_primary", definition=definition.to_json())
        )

    async def create_replacement(self, definition: TaskDefinition) -> TaskSetInfo:
        return TaskSetInfo.from_json(
            await self._call("create_replacement", definition=definition.to_json())
        )

    async def route_test_traffic(self) -> bool:
        return bool(await self._call("route_test_traffic"))

    async def shift_traffic(self, replacement_percent: int) -> None:
        await self._call("shift_traffic", percent=replacement_percent)

    async def complete(self) -> TaskSetInfo:
        return TaskSetInfo.from_json(await self._call("complete"))

    async def rollback(self) -> bool:
        return bool(await self._call("rollback"))

    async def routed(self, listener: str = "production") -> Routed:
        """The listener's weights per target group and the requests it answered per target
        group so far (empty when the service has no such listener)."""
        data = (await self._call("routed")).get(listener)
        if data is None:
            return Routed({}, {})
        return Routed(
            {str(g): int(w) for g, w in data["weights"].items()},
            {str(g): int(n) for g, n in data["served"].items()},
        )

    async def _call(self, method: str, timeout: float | None = None, **args: Any) -> Any:
        pid = f" (pid {self.pid})" if self.pid else ""
        try:
            return await call(self.place.socket, method, timeout=timeout, **args)
        except HostUnreachable as error:
            raise HostLost(
                f"the host of service {self.name}{pid} is gone ({error}); see {self.log}"
            ) from None
        except TimeoutError:
            raise ServiceError(
                f"the host of service {self.name}{pid} did not answer within {timeout:g} s: it "
                f"is stuck; `deploydeck service stop {self.name}` ends it (see {self.log})"
            ) from None
        except RemoteError as error:
            if error.kind == TaskSetStartError.__name__:
                raise TaskSetStartError(error.message) from None
            if error.kind in (ServiceError.__name__, "ValueError"):
                raise ServiceError(error.message) from None
            raise ServiceError(f"{error.kind}: {error.message}") from None


def _listeners(view: HostView) -> str:
    test = f", test {view.test[0]}:{view.test[1]}" if view.test else ", no test listener"
    return f"production {view.production[0]}:{view.production[1]}{test}"


def _listeners_fit(view: HostView, service: Service) -> bool:
    """Whether the host's listeners are the ones `service` asks for (port 0: any)."""

    def fits(asked: int, bound: tuple[str, int]) -> bool:
        return bound[0] == service.host and asked in (0, bound[1])

    if not fits(service.production_port, view.production):
        return False
    if service.test_port is None or view.test is None:
        return service.test_port is None and view.test is None
    return fits(service.test_port, view.test)


async def stop_service(folder: Path, grace: float = 5.0) -> bool:
    """End the service's host (which stops its tasks and closes its listeners), and any task
    a killed host left running. True when a host or a task was running."""
    place = HostPlace(folder)
    stopped = await stop_host(place, grace)
    left = await stop_leftover_tasks(place.folder, grace)
    return stopped or bool(left)


async def service_status(folder: Path) -> dict[str, Any]:
    """A service as its running host tells it (live), else as `service.json` last said:
    its host's pid (None when none runs), listeners with their weights, and task sets."""
    client = ServiceClient(folder)
    pid = client.pid = client.place.pid()
    status: dict[str, Any] = {"service": client.name, "hostPid": pid, "hostLog": str(client.log)}
    if pid is not None:
        try:
            view = await client.describe(STATUS_SECONDS)
        except HostLost:
            pid = status["hostPid"] = None
        else:
            return {
                **status,
                "listeners": {
                    "production": _listener(view.production, view.production_weights),
                    "test": _listener(view.test, view.test_weights) if view.test else None,
                },
                "restoring": view.restoring,
                "restoreError": view.restore_error,
                "taskSets": [t.to_json() for t in view.task_sets],
            }
    state = load_service_state(folder)
    return {
        **status,
        "listeners": {
            "production": _listener(state.production, dict(state.production_weights)),
            "test": _listener(state.test, dict(state.test_weights)) if state.test else None,
        },
        "restoring": False,
        "restoreError": "",
        "taskSets": [t.to_json() for t in state.task_sets if pid is not None],
    }


def _listener(address: tuple[str, int], weights: dict[str, int]) -> dict[str, Any]:
    return {"address": f"{address[0]}:{address[1]}", "weights": weights}


async def stop_services(services: Path) -> list[str]:
    """End the host (and tasks) of every service under `services`; the names that ran."""
    stopped = []
    for folder in service_folders(services):
        if await stop_service(folder):
            stopped.append(folder.name)
    return stopped


def service_folders(services: Path, name: str | None = None) -> list[Path]:
    """The state folders of the services under `services` (one, when named); ServiceError
    naming the services there are when `name` is not one."""
    found = sorted(p.parent for p in Path(services).glob(f"*/{SERVICE_FILE}"))
    if name is None:
        return found
    chosen = [f for f in found if f.name == name]
    if not chosen:
        known = ", ".join(f.name for f in found) or "none"
        raise ServiceError(f"no service {name!r} has been deployed here (services: {known})")
    return chosen


__all__ = [
    "HostLost",
    "HostStartError",
    "HostView",
    "ServiceClient",
    "service_folders",
    "service_status",
    "stop_service",
    "stop_services",
]
