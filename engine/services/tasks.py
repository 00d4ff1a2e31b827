"""Tasks and task sets: a task is one process (in its own process group) started from a task
definition on a free local port; a task set starts a definition's desired count of them, waits
until each answers its health check, and afterwards replaces any task that exits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.clock import Clock
from engine.host.processes import end_process_group
from engine.services.model import ServiceError, TaskDefinition, TaskInfo, TaskSetStartError
from engine.traffic.health import probe
from engine.traffic.model import HealthCheck
from engine.traffic.waits import within

OUTPUT_LINES = 40  # lines of a task's output kept to show when it fails
OUTPUT_LINE_BYTES = 4096  # of each line


def free_port(host: str) -> int:
    """A port nothing listens on now (the kernel's pick), for a task to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class StartPolicy:
    """How a task set starts its tasks: each must pass one health check (GET the definition's
    path, `probe_timeout` s to answer, tried every `interval`) within `timeout` s, by the
    runtime's clock. A task replacing one that exited waits `restart_delay` s first, twice as
    long after each replacement that failed too, up to `max_restart_delay`."""

    timeout: float = 60.0
    interval: float = 0.2
    probe_timeout: float = 2.0
    restart_delay: float = 1.0
    max_restart_delay: float = 60.0
    stop_grace: float = 5.0  # SIGTERM to SIGKILL when a task is stopped


class Task:
    """One process of a task definition, told its port through the definition's variable."""

    def __init__(self, task_id: str, definition: TaskDefinition, host: str, port: int) -> None:
        self.task_id = task_id
        self.definition = definition
        self.host = host
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None
        self.healthy = False
        self.restarts = 0
        self._output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    @property
    def output(self) -> str:
        """The task's last lines of output (stdout and stderr together)."""
        return "\n".join(self._output)

    def info(self) -> TaskInfo:
        status = "STOPPED" if self.exited else "RUNNING" if self.healthy else "PENDING"
        return TaskInfo(self.task_id, self.port, self.pid, status, self.restarts)

    async def start(self) -> None:
        d = self.definition
        env = dict(os.environ)
        env.update(d.environment)
        env[d.port_variable] = str(self.port)
        env["CONTAINER_PORT"] = str(d.container_port)
        env["DEPLOYDECK_TASK_ID"] = self.task_id
        env["DEPLOYDECK_TASK_DEFINITION"] = d.arn
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *d.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=d.working_directory,
                start_new_session=True,  # its own process group, ended as a whole
            )
        except OSError as error:
            raise TaskSetStartError(
                f"task {self.task_id} of {d.arn} could not start {d.command[0]!r}: "
                f"{error.strerror}; check the task definition's command and working directory"
            ) from None
        self._reader = asyncio.ensure_future(self._read_output())

    async def _read_output(self) -> None:
        """Keep the last lines; read in chunks, so no line is too long and the pipe never
        fills (a task blocked writing its output would hang)."""
        assert self.proc is not None and self.proc.stdout is not None
        partial = b""
        while chunk := await self.proc.stdout.read(65536):
            *lines, partial = (partial + chunk).split(b"\n")
            partial = partial[-OUTPUT_LINE_BYTES:]
            for line in lines:
                self._output.append(line[:OUTPUT_LINE_BYTES].decode("utf-8", "replace"))
        if partial:
            self._output.append(partial.decode("utf-8", "replace"))

    async def wait_exit(self) -> int:
        """The exit status, once the process has ended and its output is read."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        return code

    async def wait_healthy(self, clock: Clock, policy: StartPolicy) -> None:
        """Until GET health_check_path passes; TaskSetStartError (with the task's output) if
        the process exits first or `policy.timeout` passes."""
        d = self.definition
        check = HealthCheck(
            path=d.health_check_path,
            interval_seconds=policy.interval,
            timeout_seconds=policy.probe_timeout,
        )
        exit_wait = asyncio.ensure_future(self.wait_exit())
        last = ""

        async def passes() -> None:
            nonlocal last
            while True:
                passed, last = await probe(clock, self.host, self.port, check)
                if passed:
                    return
                sleep = asyncio.ensure_future(clock.sleep(policy.interval))
                await asyncio.wait({sleep, exit_wait}, return_when=asyncio.FIRST_COMPLETED)
                sleep.cancel()
                if exit_wait.done():
                    return

        try:
            await within(clock, policy.timeout, passes())
        except TimeoutError:
            raise TaskSetStartError(
                f"task {self.task_id} of {d.arn} did not pass its health check (GET "
                f"{d.health_check_path} on {self.host}:{self.port}) within {policy.timeout:g} s; "
                f"last check: {last or 'none finished'}. Check that the command listens on "
                f"${d.port_variable}",
                self.output,
            ) from None
        finally:
            if not exit_wait.done():
                exit_wait.cancel()
        if exit_wait.done() and not exit_wait.cancelled():
            raise TaskSetStartError(
                f"task {self.task_id} of {d.arn} exited with status {exit_wait.result()} "
                "while starting",
                self.output,
            )
        self.healthy = True

    async def stop(self, grace: float) -> None:
        """End the task's whole process group: SIGTERM, `grace` s, then SIGKILL."""
        self.healthy = False
        if self.proc is None:
            return
        if self.proc.returncode is None:
            await end_process_group(self.proc.pid, grace)
        else:  # the leader is gone; anything it left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 9)
        await self.wait_exit()


TaskHook = Callable[[Task], Awaitable[None]]


class TaskSet:
    """`definition.desired_count` tasks of one definition. `start` brings them all up healthy
    or fails leaving none; afterwards a task that exits is replaced (`on_down` for the old,
    `on_up` for the new once healthy), as an ECS service keeps its desired count."""

    def __init__(
        self,
        identifier: str,
        definition: TaskDefinition,
        clock: Clock,
        policy: StartPolicy,
        host: str = "127.0.0.1",
        on_up: TaskHook | None = None,
        on_down: TaskHook | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.identifier = identifier
        self.definition = definition
        self.clock = clock
        self.policy = policy
        self.host = host
        self.tasks: list[Task] = []
        self._on_up = on_up
        self._on_down = on_down
        self._on_change = on_change or (lambda: None)
        self._made = 0
        self._supervisors: set[asyncio.Task] = set()
        self._stopping = False

    @property
    def desired_count(self) -> int:
        return self.definition.desired_count

    @property
    def running_count(self) -> int:
        return sum(1 for t in self.tasks if t.healthy and not t.exited)

    @property
    def pending_count(self) -> int:
        return sum(1 for t in self.tasks if not t.healthy and not t.exited)

    def _new_task(self) -> Task:
        self._made += 1
        taken = {t.port for t in self.tasks}
        port = free_port(self.host)
        while port in taken:  # the kernel may offer a port a task has not bound yet
            port = free_port(self.host)
        task = Task(f"{self.identifier}-{self._made}", self.definition, self.host, port)
        self.tasks.append(task)
        return task

    async def start(self) -> None:
        """Start every task and wait until each passes its health check. If one exits or
        times out, all are stopped and TaskSetStartError carries that task's output."""
        tasks = [self._new_task() for _ in range(self.desired_count)]
        self._on_change()
        try:
            for task in tasks:
                await task.start()
            self._on_change()  # pids recorded: a host killed now leaves no task it cannot find
            results = await asyncio.gather(
                *(t.wait_healthy(self.clock, self.policy) for t in tasks), return_exceptions=True
            )
        except BaseException:
            await self.stop()
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            first = next((f for f in failures if isinstance(f, TaskSetStartError)), failures[0])
            raise first
        self._on_change()
        for task in tasks:
            self._supervise(task)

    def _supervise(self, task: Task) -> None:
        watcher = asyncio.ensure_future(self._replace_when_exited(task))
        self._supervisors.add(watcher)
        watcher.add_done_callback(self._supervisors.discard)

    async def _replace_when_exited(self, task: Task) -> None:
        await task.wait_exit()
        if self._stopping:
            return
        task.healthy = False
        self._on_change()
        if self._on_down is not None:
            await self._on_down(task)
        await task.stop(self.policy.stop_grace)  # what the task left in its group
        restarts = task.restarts
        with contextlib.suppress(ValueError):
            self.tasks.remove(task)
        delay = self.policy.restart_delay
        while not self._stopping:
            await self.clock.sleep(delay)
            delay = min(delay * 2, self.policy.max_restart_delay)
            if self._stopping:
                return
            fresh = self._new_task()
            restarts += 1
            fresh.restarts = restarts
            self._on_change()
            try:
                await fresh.start()
                await fresh.wait_healthy(self.clock, self.policy)
            except TaskSetStartError:
                await fresh.stop(self.policy.stop_grace)
                self.tasks.remove(fresh)
                self._on_change()
                continue
            if self._stopping:
                return
            self._on_change()
            if self._on_up is not None:
                try:
                    await self._on_up(fresh)
                except ServiceError:  # the listeners never found it healthy: try another
                    if self._on_down is not None:
                        await self._on_down(fresh)
                    await fresh.stop(self.policy.stop_grace)
                    self.tasks.remove(fresh)
                    self._on_change()
                    continue
            self._supervise(fresh)
            return

    async def stop(self) -> None:
        """Stop replacing tasks and end every task's process group."""
        self._stopping = True
        watchers = list(self._supervisors)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await asyncio.gather(*(t.stop(self.policy.stop_grace) for t in self.tasks))
        self._on_change()
