"""The Lambda run strategy: a function's alias moves from its current version to the revision's
target version, by the weight schedule of the deployment config, between two hooks.

Lifecycle: Start, BeforeAllowTraffic (a hook function), AllowTraffic (the alias's routing
weights set step by step on the run's clock), AfterAllowTraffic (a hook function), End. A hook
is invoked through a gateway this run serves (so it can report through
PutLifecycleEventHookExecutionStatus) and must report Succeeded before its timeout. A failed or
timed-out hook, or a stop, puts the alias back on the original version at once.
See https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-steps-lambda.html
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from engine import events as ev
from engine.appspec.lambda_appspec import LambdaAppSpec
from engine.configs.traffic import TrafficStep, traffic_schedule
from engine.deployments.run import MANUAL_STOP, RunContext, StopRequest
from engine.functions import DEFAULT_HOOK_TIMEOUT_SECONDS, FunctionGateway, FunctionRegistry
from engine.functions.registry import RegistryError
from engine.model import (
    CREATOR_ROLLBACK,
    FAILED,
    IN_PROGRESS,
    PENDING,
    STOPPED,
    SUCCEEDED,
    ComputePlatform,
    DeploymentInfo,
    Diagnostics,
)
from engine.revision.check import open_revision

LIFECYCLE = ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")
HOOK_TIMEOUT_KEY = "hook_timeout_seconds"  # under the group's target:
T = TypeVar("T")


def start_lambda(context: RunContext) -> LambdaRun:
    return LambdaRun(context)


class _Failed(Exception):
    """The run fails: `code` is CodeDeploy's error code, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Stopped(Exception):
    pass


class LambdaRun:
    """One Lambda deployment run (a DeploymentRun)."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.deployment: DeploymentInfo = context.deployment
        self.registry = FunctionRegistry(context.workspace.state_dir)
        self.gateway: FunctionGateway | None = None
        self._stop: StopRequest | None = None
        self._stopped = asyncio.Event()
        self.function = ""
        self.alias = ""
        self.original = ""
        self.target = ""

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

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
            self.gateway = None

    # ---- the run ------------------------------------------------------------------------

    async def run(self, *, resume: bool = False) -> DeploymentInfo:
        spec = self._appspec()
        target = spec.resource
        self.function, self.alias = target.name, target.alias
        self.target = str(target.target_version)
        event = "Start"
        if resume:  # the shift's state died with the old engine: undo it, end the run
            event = self._interrupted_event()
        else:
            self.publish(
                ev.InstancesTargeted(
                    self.id, self.now(), (self.function,), (f"lambda:{self.alias}",), LIFECYCLE, 0
                )
            )
            self.publish(ev.DeploymentStatusChanged(self.id, self.now(), IN_PROGRESS))
            self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.function, IN_PROGRESS))
        try:
            self.original = self._current_version(str(target.current_version))
            if resume:
                self.original = self._shifted_from() or self.original
                raise _Failed(
                    "INTERNAL_ERROR",
                    "its engine process was interrupted mid-deployment; the alias was put back "
                    f"on version {self.original}: deploy again",
                )
            self.gateway = FunctionGateway(self.registry, clock=self.clock)
            await self.gateway.start()
            for event in LIFECYCLE:
                await self._event(event, spec)
        except _Stopped:
            self._restore()
            self._finish_target(event, FAILED, None)
            stop = self._stop
            if stop is not None and stop.reason != MANUAL_STOP:  # an alarm's: say which
                return self._finish(
                    STOPPED, stop.reason, f"{stop.message or stop.reason}: traffic is back"
                )
            return self._finish(STOPPED, None, "The deployment was stopped: traffic is back")
        except _Failed as failure:
            self._restore()
            self._finish_target(event, FAILED, Diagnostics(failure.code, None, failure.message))
            return self._finish(FAILED, failure.code, failure.message)
        self.publish(ev.InstanceRevisionChanged(self.id, self.now(), self.function, self.revision))
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.function, SUCCEEDED))
        return self._finish(SUCCEEDED, None, "")

    def _interrupted_event(self) -> str:
        """The lifecycle event the interrupted engine was in (Start if none had begun)."""
        current = self.store.get_deployment(self.id).instance(self.function)
        running = [e.name for e in (current.events if current else ()) if e.status == IN_PROGRESS]
        return running[-1] if running else "Start"

    def _shifted_from(self) -> str | None:
        """The version this deployment's traffic shift started from, per its journal."""
        shifts = self.store.journal_of_kind(self.id, ev.TrafficShifted.kind)
        last = shifts[-1].event if shifts else None
        return last.original_version if isinstance(last, ev.TrafficShifted) else None

    @property
    def revision(self) -> str:
        return self.deployment.revision.sha256

    def _appspec(self) -> LambdaAppSpec:
        revision = self.context.revision
        opened = open_revision(
            Path(revision.bundle_path),
            revision.bundle_type,
            sys.maxsize,
            platform=ComputePlatform.LAMBDA,
        )
        assert isinstance(opened.appspec, LambdaAppSpec)  # checked when it was recorded
        return opened.appspec

    def _current_version(self, declared: str) -> str:
        """The version the alias serves now (what a stop or a failure goes back to)."""
        try:
            function = self.registry.get(self.function)
        except RegistryError as error:
            raise _Failed("INVALID_LAMBDA_FUNCTION", str(error)) from None
        alias = function.aliases.get(self.alias)
        if alias is None:
            raise _Failed(
                "INVALID_LAMBDA_FUNCTION",
                f"function {self.function} has no alias {self.alias}: create it with "
                f"`deploydeck publish-version --function-name {self.function} --alias "
                f"{self.alias}`",
            )
        for version in (self.target, declared):
            if version not in function.versions:
                raise _Failed(
                    "INVALID_LAMBDA_FUNCTION",
                    f"function {self.function} has no version {version}: publish it first",
                )
        if alias.version != declared and self.deployment.creator != CREATOR_ROLLBACK:
            self.note(
                f"alias {self.alias} serves version {alias.version}, not CurrentVersion "
                f"{declared} of the appspec: a stop or failure puts it back on {alias.version}",
                "warning",
            )
        return alias.version

    async def _event(self, event: str, spec: LambdaAppSpec) -> None:
        if self._stopped.is_set():
            raise _Stopped
        self.publish(ev.LifecycleEventStarted(self.id, self.now(), self.function, event))
        note = ""
        if event in ("BeforeAllowTraffic", "AfterAllowTraffic"):
            hook = spec.hook_function(event)
            if hook is None:
                self.publish(
                    ev.LifecycleEventFinished(
                        self.id, self.now(), self.function, event, "Skipped", note="no hook"
                    )
                )
                return
            await self._hook(event, hook)
            note = f"hook {hook} reported Succeeded"
        elif event == "AllowTraffic":
            await self._shift()
        self.publish(
            ev.LifecycleEventFinished(
                self.id, self.now(), self.function, event, SUCCEEDED, note=note
            )
        )

    def _hook_timeout(self) -> float:
        group = self.context.workspace.group(
            self.deployment.application, self.deployment.deployment_group
        )
        value = (group.target or {}).get(HOOK_TIMEOUT_KEY, DEFAULT_HOOK_TIMEOUT_SECONDS)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _Failed(
                "INVALID_LAMBDA_CONFIGURATION",
                f"deployment group {group.name}: target.{HOOK_TIMEOUT_KEY} is {value!r}; "
                "write a positive number of seconds (default 3600)",
            )
        return float(value)

    async def _hook(self, event: str, hook: str) -> None:
        timeout = self._hook_timeout()
        assert self.gateway is not None
        execution = self.gateway.hooks.start(self.id, hook)
        result = await self._or_stop(self.gateway.hooks.wait(execution, timeout))
        if result == "Succeeded":
            return
        invoke_error = self.gateway.hooks.get(execution).invoke_error
        why = f" (invoking it failed: {invoke_error})" if invoke_error else ""
        if result == "timeout":
            raise _Failed(
                "TIMEOUT",
                f"{event} hook {hook} did not report within {timeout:g} s{why}",
            )
        raise _Failed("HOOK_EXECUTION_FAILURE", f"{event} hook {hook} reported Failed{why}")

    def schedule(self) -> list[TrafficStep]:
        routing = self.context.config.traffic_routing
        if routing is None or self.deployment.creator == CREATOR_ROLLBACK:
            return [TrafficStep(0, 100)]  # a rollback moves all traffic back at once
        return traffic_schedule(routing)

    async def _shift(self) -> None:
        started = self.now()
        for step in self.schedule():
            # a timer may fire a hair early: sleep again until the step is due
            while (wait := started + step.at_seconds - self.now()) > 0:
                await self._or_stop(self.clock.sleep(wait))
            await self._alarm_check()
            self._set_weight(step.target_percent / 100)

    async def _alarm_check(self) -> None:
        """Evaluate the alarms before a traffic step; a tripped one stops the shift."""
        alarms = self.context.alarms
        if alarms is None:
            return
        stop = await self._or_stop(alarms.check())
        if stop is not None:
            self.request_stop(stop)
            raise _Stopped

    def _set_weight(self, weight: float) -> None:
        """Route `weight` of the alias's calls to the target version, the rest to the original."""
        if weight >= 1.0 or self.original == self.target:
            self.registry.set_alias(self.function, self.alias, self.target)
        elif weight <= 0.0:
            self.registry.set_alias(self.function, self.alias, self.original)
        else:
            self.registry.set_alias(
                self.function, self.alias, self.original, {self.target: round(weight, 4)}
            )
        self.publish(
            ev.TrafficShifted(
                self.id, self.now(), self.function, self.alias, self.original, self.target, weight
            )
        )

    def _restore(self) -> None:
        """Put the alias back on the original version, if the run had moved it."""
        if not self.original:
            return
        alias = self.registry.get(self.function).aliases.get(self.alias)
        if alias is not None and alias.version == self.original and not alias.additional:
            return
        self._set_weight(0.0)

    async def _or_stop(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result, unless a stop comes first (then _Stopped)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise _Stopped
        return task.result()

    def _finish_target(self, event: str, status: str, diagnostics: Diagnostics | None) -> None:
        current = self.store.get_deployment(self.id).instance(self.function)
        if current is None:
            return
        shown = {e.name: e.status for e in current.events}
        if shown.get(event) == IN_PROGRESS:
            self.publish(
                ev.LifecycleEventFinished(
                    self.id, self.now(), self.function, event, status, diagnostics
                )
            )
        for later in LIFECYCLE[LIFECYCLE.index(event) + 1 :]:
            if shown.get(later, PENDING) != PENDING:  # ran before an interruption
                continue
            self.publish(
                ev.LifecycleEventFinished(self.id, self.now(), self.function, later, "Skipped")
            )
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.function, status))

    def _finish(self, status: str, code: str | None, message: str) -> DeploymentInfo:
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), status, code, message))
        return self.store.get_deployment(self.id)
