"""The ECS-like service runtime: a service's task sets behind its production and optional test
listeners (built-in balancers weighting two target groups), and the operations an ECS
blue/green deployment drives: create the replacement task set, route test traffic to it, shift
production weight, then drain the original or roll back. Target groups alternate: the group of
the task set a deployment leaves primary is the next deployment's original.

State goes to `service.json` under the state folder after every change (see state.py)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from engine.clock import Clock, RealClock
from engine.host.processes import end_process_group
from engine.json_files import write_json
from engine.services.model import (
    Service,
    ServiceError,
    TaskDefinition,
    TaskSetInfo,
    TaskSetLabel,
    TaskSetStartError,
    TaskSetStatus,
)
from engine.services.state import SERVICE_FILE, load_service_state
from engine.services.tasks import StartPolicy, Task, TaskSet
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.model import Target, TrafficError, TrafficSettings

LOCK_FILE = ".runtime.lock"


async def stop_leftover_tasks(state_dir: Path, grace: float) -> list[str]:
    """End the process groups of the tasks `service.json` lists as not stopped whose process
    is still that task (its environment names the task id: a reused pid is left alone).
    Returns their task ids."""
    if not (Path(state_dir) / SERVICE_FILE).exists():
        return []
    stopped = []
    for task_set in load_service_state(state_dir).task_sets:
        for task in task_set.tasks:
            if task.pid is None or task.status == "STOPPED":
                continue
            try:
                environ = Path(f"/proc/{task.pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone, or not ours to read
            if f"DEPLOYDECK_TASK_ID={task.task_id}".encode() in environ:
                await end_process_group(task.pid, grace)
                stopped.append(task.task_id)
    return stopped


@dataclass(eq=False)
class _Slot:
    """A task set in the service with its CodeDeploy label, status and target group."""

    tasks: TaskSet
    label: TaskSetLabel
    status: TaskSetStatus
    target_group: str


class ServiceRuntime:
    """Runs one service. `start` opens its listeners; `create_primary` starts the first task
    set; a deployment then calls `create_replacement`, `route_test_traffic`, `shift_traffic`
    and `complete` (or `rollback`). `close` stops every task and listener."""

    def __init__(
        self,
        service: Service,
        state_dir: Path,
        clock: Clock | None = None,
        traffic: TrafficSettings | None = None,
        policy: StartPolicy | None = None,
    ) -> None:
        self.service = service
        self.state_dir = Path(state_dir)
        self.clock = clock or RealClock()
        self.traffic = traffic or TrafficSettings()
        self.policy = policy or StartPolicy()
        self.production = BuiltinBalancer(
            [], self.traffic, self.clock, service.host, service.production_port
        )
        self.test: BuiltinBalancer | None = None
        if service.test_port is not None:
            self.test = BuiltinBalancer(
                [], self.traffic, self.clock, service.host, service.test_port
            )
        self.primary_target_group = service.target_groups[0]
        self._slots: list[_Slot] = []
        self._made = 0
        self._lock = asyncio.Lock()
        self._running = False
        self._bound: dict[int, tuple[str, int]] = {}  # each listener's address once started
        self._holder: IO[str] | None = None  # the state folder's lock, held while running
        self.leftovers_stopped: list[str] = []  # task ids a killed runtime had left running

    # --- reading ----------------------------------------------------------------------------

    @property
    def production_address(self) -> tuple[str, int]:
        return self.production.address

    @property
    def test_address(self) -> tuple[str, int] | None:
        return self.test.address if self.test is not None else None

    def _balancers(self) -> list[BuiltinBalancer]:
        return [self.production] + ([self.test] if self.test is not None else [])

    def task_sets(self) -> list[TaskSetInfo]:
        """Every task set, primary first, as CodeDeploy shows them."""
        return [self._info(slot) for slot in self._slots]

    def _info(self, slot: _Slot) -> TaskSetInfo:
        ts = slot.tasks
        return TaskSetInfo(
            identifier=ts.identifier,
            label=slot.label,
            status=slot.status,
            task_definition=ts.definition.arn,
            target_group=slot.target_group,
            desired_count=ts.desired_count,
            pending_count=ts.pending_count,
            running_count=ts.running_count,
            traffic_weight=float(self.production.weights.get(slot.target_group, 0)),
            test_traffic_weight=float(
                (self.test.weights if self.test is not None else {}).get(slot.target_group, 0)
            ),
            tasks=tuple(t.info() for t in ts.tasks),
        )

    def _save(self) -> None:
        def listener(lb: BuiltinBalancer, port: int) -> dict:
            host, bound = self._bound.get(id(lb), (self.service.host, port))
            return {"host": host, "port": bound, "weights": lb.weights}

        primary = next((s for s in self._slots if s.status is TaskSetStatus.PRIMARY), None)
        data = {
            "service": self.service.name,
            "listeners": {
                "production": listener(self.production, self.service.production_port),
                "test": listener(self.test, self.service.test_port or 0) if self.test else None,
            },
            "targetGroups": list(self.service.target_groups),
            "primaryTargetGroup": self.primary_target_group,
            "taskSets": [info.to_json() for info in self.task_sets()],
            # what a runtime started after this one was killed starts again
            "primaryTaskDefinition": primary.tasks.definition.to_json() if primary else None,
            "running": self._running,
            "updated": self.clock.now(),
        }
        write_json(self.state_dir / SERVICE_FILE, data)

    def configure(self, traffic: TrafficSettings, policy: StartPolicy) -> None:
        """New timings for the listeners' drains and for task starts, from the next operation
        on, and for the health checks of the next task set started (each target group keeps the
        check it was given when its task set started)."""
        self.traffic, self.policy = traffic, policy
        for lb in self._balancers():
            lb.settings = traffic

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the state folder (ServiceError when another runtime has it), stop the tasks a
        runtime killed before it could close left running, and open the listeners
        (ServiceError naming the port when one is taken)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        holder = open(self.state_dir / LOCK_FILE, "w")  # noqa: SIM115 (held while running)
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder.close()
            raise ServiceError(
                f"service {self.service.name}: another process runs it from state folder "
                f"{self.state_dir}; close that one first"
            ) from None
        try:
            self.leftovers_stopped = await stop_leftover_tasks(
                self.state_dir, self.policy.stop_grace
            )
        except BaseException:
            holder.close()
            raise
        self._holder = holder
        try:
            for lb in self._balancers():
                await lb.start()
                self._bound[id(lb)] = lb.address
        except TrafficError as error:
            await self.close()
            raise ServiceError(f"service {self.service.name}: {error}") from None
        self._running = True
        self._save()

    async def close(self) -> None:
        """Stop every task (whole process groups) and close the listeners."""
        await asyncio.gather(*(slot.tasks.stop() for slot in self._slots))
        for lb in self._balancers():
            await lb.close()
        self._running = False
        if self._holder is not None:  # only the runtime holding the state folder writes it
            with contextlib.suppress(OSError):
                self._save()
            self._holder.close()
            self._holder = None

    async def __aenter__(self) -> ServiceRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- operations a deployment drives -----------------------------------------------------

    async def create_primary(self, definition: TaskDefinition) -> TaskSetInfo:
        """Start the service's first task set (Blue, PRIMARY) on the primary target group and
        send it all traffic once its tasks are healthy behind the listeners."""
        async with self._lock:
            if self._slots:
                raise ServiceError(
                    f"service {self.service.name} already has a primary task set; deploy a new "
                    "task definition with a replacement task set"
                )
            group = self.primary_target_group
            slot = await self._start_slot(
                definition, TaskSetLabel.BLUE, TaskSetStatus.PRIMARY, group
            )
            for lb in self._balancers():
                lb.set_weights({group: 100})
            self._save()
            return self._info(slot)

    async def create_replacement(self, definition: TaskDefinition) -> TaskSetInfo:
        """Install: start a Green (ACTIVE) task set of `definition` on the other target group,
        wait until its tasks are healthy behind the listeners; it gets no traffic yet. On
        failure nothing of it is left and TaskSetStartError carries the failing task's output."""
        async with self._lock:
            self._primary()
            if self._replacement() is not None:
                raise ServiceError(
                    f"service {self.service.name} already has a replacement task set; complete "
                    "or roll back that deployment first"
                )
            group = self._other_group()
            slot = await self._start_slot(
                definition, TaskSetLabel.GREEN, TaskSetStatus.ACTIVE, group
            )
            return self._info(slot)

    async def route_test_traffic(self) -> bool:
        """AllowTestTraffic: the test listener sends everything to the replacement. False
        (nothing done) when the service has no test listener."""
        async with self._lock:
            green = self._need_replacement("route test traffic")
            if self.test is None:
                return False
            self.test.set_weights({green.target_group: 100})
            self._save()
            return True

    async def shift_traffic(self, replacement_percent: int) -> None:
        """AllowTraffic step: the production listener sends `replacement_percent` % of requests
        to the replacement and the rest to the original."""
        if (
            isinstance(replacement_percent, bool)
            or not isinstance(replacement_percent, int)
            or not 0 <= replacement_percent <= 100
        ):
            raise ServiceError(
                f"a traffic weight must be a whole percentage from 0 to 100, not "
                f"{replacement_percent!r}"
            )
        async with self._lock:
            green = self._need_replacement("shift traffic")
            blue = self._primary()
            self.production.set_weights(
                {
                    blue.target_group: 100 - replacement_percent,
                    green.target_group: replacement_percent,
                }
            )
            self._save()

    async def complete(self) -> TaskSetInfo:
        """After the termination wait: all traffic on the replacement, which becomes PRIMARY;
        the original drains (open requests finish, up to the deregistration delay), its tasks
        stop and it is removed. Its target group becomes the next deployment's replacement
        group. Returns the new primary."""
        async with self._lock:
            green = self._need_replacement("complete the deployment")
            blue = self._primary()
            for lb in self._balancers():
                lb.set_weights({green.target_group: 100})
            green.status = TaskSetStatus.PRIMARY
            blue.status = TaskSetStatus.DRAINING
            self.primary_target_group = green.target_group
            self._save()
            await self._remove(blue)
            green.label = TaskSetLabel.BLUE  # the original of the next deployment
            self._save()
            return self._info(green)

    async def rollback(self) -> bool:
        """All production and test traffic back on the original; the replacement (if there is
        one) drains, its tasks stop and it is removed. True when there was one to remove."""
        async with self._lock:
            blue = self._primary()
            for lb in self._balancers():
                lb.set_weights({blue.target_group: 100})
            green = self._replacement()
            if green is None:
                self._save()
                return False
            green.status = TaskSetStatus.DRAINING
            self._save()
            await self._remove(green)
            self._save()
            return True

    # --- internals --------------------------------------------------------------------------

    def _primary(self) -> _Slot:
        for slot in self._slots:
            if slot.status is TaskSetStatus.PRIMARY:
                return slot
        raise ServiceError(f"service {self.service.name} has no primary task set; create one first")

    def _replacement(self) -> _Slot | None:
        return next((s for s in self._slots if s.status is TaskSetStatus.ACTIVE), None)

    def _need_replacement(self, what: str) -> _Slot:
        slot = self._replacement()
        if slot is None:
            raise ServiceError(
                f"service {self.service.name} has no replacement task set to {what} with; "
                "create one first"
            )
        return slot

    def _other_group(self) -> str:
        first, second = self.service.target_groups
        return second if self.primary_target_group == first else first

    async def _start_slot(
        self, definition: TaskDefinition, label: TaskSetLabel, status: TaskSetStatus, group: str
    ) -> _Slot:
        self._made += 1
        identifier = f"ecs-svc/{self.service.name}/{self._made}"

        async def up(task: Task) -> None:
            await self._register(task, group)

        async def down(task: Task) -> None:
            await self._deregister(task)

        task_set = TaskSet(
            identifier,
            definition,
            self.clock,
            self.policy,
            self.service.host,
            on_up=up,
            on_down=down,
            on_change=self._changed,
        )
        slot = _Slot(task_set, label, status, group)
        self._slots.append(slot)
        # the group's own health check, from this task definition: the other group keeps its own
        check = replace(self.traffic.health_check, path=definition.health_check_path)
        for lb in self._balancers():
            lb.set_health_check(group, check)
        try:
            await task_set.start()
            await asyncio.gather(*(self._register(t, group) for t in task_set.tasks))
        except BaseException:
            await asyncio.shield(self._remove(slot))
            raise
        self._save()
        return slot

    def _changed(self) -> None:
        if self._running and self._holder is not None:
            with contextlib.suppress(OSError):
                self._save()

    async def _register(self, task: Task, group: str) -> None:
        """Put a healthy task behind every listener in `group` and wait for the listeners'
        health checks to pass."""
        target = Target(task.task_id, task.host, task.port)
        for lb in self._balancers():
            await lb.register(target, group)
        try:
            await asyncio.gather(*(lb.allow(task.task_id) for lb in self._balancers()))
        except TrafficError as error:
            raise TaskSetStartError(f"{error}", task.output) from None

    async def _deregister(self, task: Task) -> None:
        async def drain(lb: BuiltinBalancer) -> None:
            with contextlib.suppress(TrafficError):  # already removed (crashed and replaced)
                await lb.deregister(task.task_id)

        await asyncio.gather(
            *(drain(lb) for lb in self._balancers() if task.task_id in lb.groups())
        )

    async def _remove(self, slot: _Slot) -> None:
        """Drain the task set's tasks from the listeners, stop them and forget the set."""
        await asyncio.gather(*(self._deregister(t) for t in slot.tasks.tasks))
        await slot.tasks.stop()
        if slot in self._slots:
            self._slots.remove(slot)
        self._changed()
