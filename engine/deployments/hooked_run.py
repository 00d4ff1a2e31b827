"""What the Lambda and ECS run strategies share: one target (a function's alias, a service)
whose lifecycle hooks are functions, invoked through a gateway the run serves so they can
report through PutLifecycleEventHookExecutionStatus before their timeout; stops that end
whatever the run awaits; and the journaling of how the target's lifecycle ended."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from engine import events as ev
from engine.deployments.run import RunContext, StopRequest
from engine.functions import DEFAULT_HOOK_TIMEOUT_SECONDS, FunctionGateway, FunctionRegistry
from engine.model import (
    IN_PROGRESS,
    PENDING,
    ComputePlatform,
    DeploymentInfo,
    Diagnostics,
)
from engine.revision.check import open_revision

HOOK_TIMEOUT_KEY = "hook_timeout_seconds"  # under the group's target:
T = TypeVar("T")


class RunFailed(Exception):
    """The run fails: `code` is CodeDeploy's error code, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RunStopped(Exception):
    """A stop came (an operator, a signal, an alarm): the run puts traffic back and ends."""


class HookedRun:
    """The shared half of a Lambda or ECS run (a DeploymentRun); `target_name` and
    `lifecycle` are the subclass's."""

    platform: ComputePlatform
    invalid_code = "INVALID_LAMBDA_CONFIGURATION"  # the error code of a bad group target
    lifecycle: tuple[str, ...] = ()

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.deployment: DeploymentInfo = context.deployment
        self.registry = FunctionRegistry(context.workspace.state_dir)
        self.gateway: FunctionGateway | None = None
        self._stop: StopRequest | None = None
        self._stopped = asyncio.Event()
        self.target_name = ""

    @property
    def id(self) -> str:
        return self.deployment.id

    @property
    def stop_request(self) -> StopRequest | None:
        return self._stop

    def request_stop(self, request: StopRequest) -> None:
        if self._stop is None:
            self._stop = request
        self._stopped.set()

    def now(self) -> float:
        return self.clock.now()

    def publish(self, event: ev.Event) -> None:
        self.store.append(event)

    def note(self, message: str, level: str = "info") -> None:
        self.publish(ev.Note(self.id, self.now(), self.context.redact(message), level))

    async def start_gateway(self) -> None:
        self.gateway = FunctionGateway(self.registry, clock=self.clock)
        await self.gateway.start()

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
            self.gateway = None

    @property
    def revision(self) -> str:
        return self.deployment.revision.sha256

    def appspec(self) -> Any:
        """The revision's appspec, parsed for the run's platform (checked when recorded)."""
        revision = self.context.revision
        opened = open_revision(
            Path(revision.bundle_path), revision.bundle_type, sys.maxsize, platform=self.platform
        )
        return opened.appspec

    def target_settings(self) -> dict[str, Any]:
        group = self.context.workspace.group(
            self.deployment.application, self.deployment.deployment_group
        )
        return dict(group.target or {})

    def bad_setting(self, key: str, value: object, what: str) -> RunFailed:
        """The failure for a group target setting that cannot be used."""
        return RunFailed(
            self.invalid_code,
            f"deployment group {self.deployment.deployment_group}: target.{key} is {value!r}; "
            f"{what}",
        )

    def hook_timeout(self) -> float:
        value = self.target_settings().get(HOOK_TIMEOUT_KEY, DEFAULT_HOOK_TIMEOUT_SECONDS)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.bad_setting(
                HOOK_TIMEOUT_KEY, value, "write a positive number of seconds (default 3600)"
            )
        return float(value)

    async def hook(self, event: str, hook: str) -> None:
        """Invoke the hook function and wait for its Succeeded (RunFailed otherwise)."""
        timeout = self.hook_timeout()
        assert self.gateway is not None
        execution = self.gateway.hooks.start(self.id, hook)
        result = await self.or_stop(self.gateway.hooks.wait(execution, timeout))
        if result == "Succeeded":
            return
        invoke_error = self.gateway.hooks.get(execution).invoke_error
        why = f" (invoking it failed: {invoke_error})" if invoke_error else ""
        if result == "timeout":
            raise RunFailed(
                "TIMEOUT", f"{event} hook {hook} did not report within {timeout:g} s{why}"
            )
        raise RunFailed("HOOK_EXECUTION_FAILURE", f"{event} hook {hook} reported Failed{why}")

    async def or_stop(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result, unless a stop comes first (then RunStopped)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise RunStopped
        return task.result()

    async def alarm_check(self) -> None:
        """Evaluate the alarms before a traffic step; a tripped one stops the run (RunStopped)."""
        alarms = self.context.alarms
        if alarms is None:
            return
        stop = await self.or_stop(alarms.check())
        if stop is not None:
            self.request_stop(stop)
            raise RunStopped

    def interrupted_event(self) -> str:
        """The lifecycle event an interrupted engine was in (the first if none had begun)."""
        current = self.store.get_deployment(self.id).instance(self.target_name)
        running = [e.name for e in (current.events if current else ()) if e.status == IN_PROGRESS]
        return running[-1] if running else self.lifecycle[0]

    def finish_target(self, event: str, status: str, diagnostics: Diagnostics | None) -> None:
        """End the target: `event` with `status`, the events after it Skipped."""
        current = self.store.get_deployment(self.id).instance(self.target_name)
        if current is None:
            return
        shown = {e.name: e.status for e in current.events}
        if shown.get(event) == IN_PROGRESS:
            self.publish(
                ev.LifecycleEventFinished(
                    self.id, self.now(), self.target_name, event, status, diagnostics
                )
            )
        for later in self.lifecycle[self.lifecycle.index(event) + 1 :]:
            if shown.get(later, PENDING) != PENDING:  # ran before an interruption
                continue
            self.publish(
                ev.LifecycleEventFinished(self.id, self.now(), self.target_name, later, "Skipped")
            )
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.target_name, status))

    def stopped_code(self) -> tuple[str | None, str | None]:
        """The error code and message a stopped run ends with (an alarm's, a manual stop's)."""
        if self._stop is None:
            return None, None
        return self._stop.reason, self._stop.message

    def finish(self, status: str, code: str | None, message: str) -> DeploymentInfo:
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), status, code, message))
        return self.store.get_deployment(self.id)
