"""A service's host: the long-lived process that runs one service (its task sets and its
production and test listeners) between deployments, so the service keeps answering when no
deployment runs. Started detached by the first deployment of the service (engine/hosting),
driven by JSON calls from deployment runs and CLI commands (client.py).

    python -m engine.services.host --folder <service state folder> --service NAME
        --production-port P [--test-port T] [--listen-host H] [--settings JSON]

On start it ends the tasks a host killed before it could close left running, then starts
again the primary task set `service.json` names, in the background (calls that change the
service wait for it). A task that exits is replaced, as a task set does. `shutdown`, SIGTERM
or the folder's removal stop every task and close the listeners."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from engine.clock import RealClock
from engine.hosting.daemon import HostPlace, serve_host
from engine.hosting.rpc import Handler
from engine.services.model import Service, ServiceError, TaskDefinition, TaskSetStatus
from engine.services.runtime import ServiceRuntime
from engine.services.state import SERVICE_FILE, TaskDefinitions, read_json
from engine.services.tasks import StartPolicy
from engine.traffic.model import HealthCheck, TrafficSettings

T = TypeVar("T")
PRIMARY_DEFINITION_KEY = "primaryTaskDefinition"  # in service.json: what a new host restores


def settings_json(traffic: TrafficSettings, policy: StartPolicy) -> dict[str, Any]:
    """The listeners' and tasks' timings as the host takes them."""
    return {"traffic": dataclasses.asdict(traffic), "policy": dataclasses.asdict(policy)}


def settings_from_json(data: Mapping[str, Any]) -> tuple[TrafficSettings, StartPolicy]:
    traffic = dict(data["traffic"])
    check = HealthCheck(**traffic.pop("health_check"))
    return TrafficSettings(health_check=check, **traffic), StartPolicy(**data["policy"])


def primary_to_restore(folder: Path) -> TaskDefinition | None:
    """The task definition of the primary task set `service.json` lists (what a host that
    was killed ran), from the file itself or the registry beside the folder; None if none."""
    path = folder / SERVICE_FILE
    if not path.exists():
        return None
    data = read_json(path)
    if isinstance(data.get(PRIMARY_DEFINITION_KEY), dict):
        return TaskDefinition.from_json(data[PRIMARY_DEFINITION_KEY])
    for task_set in data.get("taskSets", []):
        if task_set.get("status") == TaskSetStatus.PRIMARY:
            family, _, number = str(task_set["taskDefinition"]).partition(":")
            return TaskDefinitions(folder.parent).get(family, int(number))
    return None


class ServiceHost:
    """The calls a service's host answers, around its runtime."""

    def __init__(self, runtime: ServiceRuntime, restore: TaskDefinition | None) -> None:
        self.runtime = runtime
        self._restore_definition = restore
        self._restoring: asyncio.Task[None] | None = None
        self.restore_error = ""
        self._finishing: set[asyncio.Task[Any]] = set()

    def begin_restore(self) -> None:
        """Start the primary task set again (in the background: the host answers meanwhile)."""
        definition = self._restore_definition
        if definition is None or self._has_primary():
            return
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._restore(definition))

    def _has_primary(self) -> bool:
        return any(t.status is TaskSetStatus.PRIMARY for t in self.runtime.task_sets())

    async def _restore(self, definition: TaskDefinition) -> None:
        try:
            await self.runtime.create_primary(definition)
            self.restore_error = ""
        except ServiceError as error:
            self.restore_error = f"the primary task set ({definition.arn}) did not start: {error}"
            print(f"deploydeck service host: {self.restore_error}", file=sys.stderr, flush=True)

    async def _restored(self) -> None:
        """Until the restore (if any) is over; one that failed is tried again."""
        if self.restore_error and self._restoring is not None and self._restoring.done():
            self.begin_restore()
        if self._restoring is not None:
            await asyncio.shield(self._restoring)
        if self.restore_error:
            raise ServiceError(self.restore_error)

    async def _to_the_end(self, work: Awaitable[T]) -> T:
        """Run `work` to its end even if the caller leaves (a drain half done would leave a
        task set DRAINING for good)."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return await asyncio.shield(task)

    async def close(self) -> None:
        pending = [t for t in (self._restoring, *self._finishing) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.runtime.close()

    def handlers(self) -> dict[str, Handler]:
        runtime = self.runtime

        async def describe() -> dict[str, Any]:
            test = runtime.test_address
            return {
                "service": runtime.service.name,
                "production": list(runtime.production_address),
                "test": list(test) if test else None,
                "productionWeights": runtime.production.weights,
                "testWeights": runtime.test.weights if runtime.test is not None else {},
                "restoring": self._restoring is not None and not self._restoring.done(),
                "restoreError": self.restore_error,
                "taskSets": [t.to_json() for t in runtime.task_sets()],
            }

        async def configure(settings: dict[str, Any]) -> None:
            traffic, policy = settings_from_json(settings)
            runtime.configure(traffic, policy)

        async def restore() -> list[dict[str, Any]]:
            await self._restored()
            return await task_sets()

        async def create_primary(definition: dict[str, Any]) -> dict[str, Any]:
            await self._restored()
            info = await runtime.create_primary(TaskDefinition.from_json(definition))
            return info.to_json()

        async def create_replacement(definition: dict[str, Any]) -> dict[str, Any]:
            await self._restored()
            info = await runtime.create_replacement(TaskDefinition.from_json(definition))
            return info.to_json()

        async def route_test_traffic() -> bool:
            return await runtime.route_test_traffic()

        async def shift_traffic(percent: int) -> None:
            await runtime.shift_traffic(percent)

        async def complete() -> dict[str, Any]:
            return (await self._to_the_end(runtime.complete())).to_json()

        async def rollback() -> bool:
            await self._restored()
            return await self._to_the_end(runtime.rollback())

        async def task_sets() -> list[dict[str, Any]]:
            return [t.to_json() for t in runtime.task_sets()]

        async def routed() -> dict[str, Any]:
            listeners = {"production": runtime.production, "test": runtime.test}
            return {
                name: {"weights": lb.weights, "served": lb.served()}
                for name, lb in listeners.items()
                if lb is not None
            }

        return {
            "describe": describe,
            "configure": configure,
            "restore": restore,
            "create_primary": create_primary,
            "create_replacement": create_replacement,
            "route_test_traffic": route_test_traffic,
            "shift_traffic": shift_traffic,
            "complete": complete,
            "rollback": rollback,
            "task_sets": task_sets,
            "routed": routed,
        }


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine.services.host")
    parser.add_argument("--folder", type=Path, required=True, help="the service's state folder")
    parser.add_argument("--service", required=True)
    parser.add_argument("--production-port", type=int, default=0)
    parser.add_argument("--test-port", type=int)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--settings", type=json.loads, default=None, help="JSON timings")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    folder: Path = args.folder.absolute()
    service = Service(args.service, args.production_port, args.test_port, args.listen_host)
    traffic, policy = (
        settings_from_json(args.settings) if args.settings else (TrafficSettings(), StartPolicy())
    )

    @contextlib.asynccontextmanager
    async def hosted() -> AsyncIterator[Mapping[str, Handler]]:
        restore = primary_to_restore(folder)  # read before the runtime rewrites the file
        runtime = ServiceRuntime(service, folder, RealClock(), traffic, policy)
        state = read_json(folder / SERVICE_FILE) if (folder / SERVICE_FILE).exists() else {}
        if state.get("primaryTargetGroup") in service.target_groups:
            runtime.primary_target_group = state["primaryTargetGroup"]
        await runtime.start()
        host = ServiceHost(runtime, restore)
        host.begin_restore()
        try:
            yield host.handlers()
        finally:
            await host.close()

    return serve_host(HostPlace(folder), hosted)


if __name__ == "__main__":
    raise SystemExit(main())
