"""The Lambda run strategy: a function's alias moves from its current version to the revision's
target version, by the weight schedule of the deployment config, between two hooks.

Lifecycle: Start, BeforeAllowTraffic (a hook function), AllowTraffic (the alias's routing
weights set step by step on the run's clock by the shift step, engine/deployments/shift.py),
AfterAllowTraffic (a hook function), End. A hook is invoked through a gateway this run serves
(so it can report through PutLifecycleEventHookExecutionStatus) and must report Succeeded
before its timeout. A failed or timed-out hook, or a stop, puts the alias back on the original
version at once.
See https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-steps-lambda.html
"""

from __future__ import annotations

from engine import events as ev
from engine.appspec.lambda_appspec import LambdaAppSpec
from engine.configs.traffic import TrafficStep, traffic_schedule
from engine.deployments.hooked_run import HookedRun, RunFailed, RunStopped
from engine.deployments.run import RunContext
from engine.deployments.shift import TrafficShift
from engine.deployments.traffic_gauge import TrafficGauge
from engine.functions.registry import RegistryError
from engine.model import (
    CREATOR_ROLLBACK,
    FAILED,
    IN_PROGRESS,
    STOPPED,
    SUCCEEDED,
    ComputePlatform,
    DeploymentInfo,
    Diagnostics,
)

LIFECYCLE = ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")


def start_lambda(context: RunContext) -> LambdaRun:
    return LambdaRun(context)


class LambdaRun(HookedRun):
    """One Lambda deployment run (a DeploymentRun)."""

    platform = ComputePlatform.LAMBDA
    lifecycle = LIFECYCLE

    def __init__(self, context: RunContext) -> None:
        super().__init__(context)
        self.function = ""
        self.alias = ""
        self.original = ""
        self.target = ""

    # ---- the run ------------------------------------------------------------------------

    async def run(self, *, resume: bool = False) -> DeploymentInfo:
        spec: LambdaAppSpec = self.appspec()
        target = spec.resource
        self.function, self.alias = target.name, target.alias
        self.target_name = self.function
        self.target = str(target.target_version)
        event = "Start"
        if resume:  # the shift's state died with the old engine: undo it, end the run
            event = self.interrupted_event()
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
                raise RunFailed(
                    "INTERNAL_ERROR",
                    "its engine process was interrupted mid-deployment; the alias was put back "
                    f"on version {self.original}: deploy again",
                )
            await self.start_gateway()
            async with self._gauge():
                for event in LIFECYCLE:
                    await self._event(event, spec)
        except RunStopped:
            self._restore()
            self.finish_target(event, FAILED, None)
            code, message = self.stopped_code()
            return self.finish(
                STOPPED, code, message or "The deployment was stopped: traffic is back"
            )
        except RunFailed as failure:
            self._restore()
            self.finish_target(event, FAILED, Diagnostics(failure.code, None, failure.message))
            return self.finish(FAILED, failure.code, failure.message)
        self.publish(ev.InstanceRevisionChanged(self.id, self.now(), self.function, self.revision))
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.function, SUCCEEDED))
        return self.finish(SUCCEEDED, None, "")

    def _shifted_from(self) -> str | None:
        """The version this deployment's traffic shift started from, per its journal."""
        shifts = self.store.journal_of_kind(self.id, ev.TrafficShifted.kind)
        last = shifts[-1].event if shifts else None
        return last.original_version if isinstance(last, ev.TrafficShifted) else None

    def _gauge(self) -> TrafficGauge:
        return TrafficGauge(
            self.id,
            self.store,
            self.now,
            self.registry.root,
            self.function,
            self.alias,
            self.target,
            self.schedule(),
        )

    def _current_version(self, declared: str) -> str:
        """The version the alias serves now (what a stop or a failure goes back to)."""
        try:
            function = self.registry.get(self.function)
        except RegistryError as error:
            raise RunFailed("INVALID_LAMBDA_FUNCTION", str(error)) from None
        alias = function.aliases.get(self.alias)
        if alias is None:
            raise RunFailed(
                "INVALID_LAMBDA_FUNCTION",
                f"function {self.function} has no alias {self.alias}: create it with "
                f"`deploydeck publish-version --function-name {self.function} --alias "
                f"{self.alias}`",
            )
        for version in (self.target, declared):
            if version not in function.versions:
                raise RunFailed(
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
            raise RunStopped
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
            await self.hook(event, hook)
            note = f"hook {hook} reported Succeeded"
        elif event == "AllowTraffic":
            await self._shift()
        self.publish(
            ev.LifecycleEventFinished(
                self.id, self.now(), self.function, event, SUCCEEDED, note=note
            )
        )

    def schedule(self) -> list[TrafficStep]:
        routing = self.context.config.traffic_routing
        if routing is None or self.deployment.creator == CREATOR_ROLLBACK:
            return [TrafficStep(0, 100)]  # a rollback moves all traffic back at once
        return traffic_schedule(routing)

    async def _shift(self) -> None:
        async def route(weight: float) -> None:
            await self.alarm_check()
            self._set_weight(weight)

        shift = TrafficShift(self.id, self.store, self.clock, self.schedule(), route)
        await self.or_stop(shift.run())

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
