"""Server in-place deployments: batch by batch, each instance through the lifecycle events.

Structure: one task per deployment; each batch is one TaskGroup with a task per instance; each
lifecycle event is one step (engine/deployments/steps.py): an agent command on the instance's
target, or the engine's own BlockTraffic/AllowTraffic. A stop cancels the running batch: the
agent ends every running hook's process group, interrupted instances are Failed, instances not
started are Skipped and the deployment is Stopped. Every state change goes through `publish`,
which journals it before anyone can see it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.clock import Clock
from engine.configs import BatchScheduler, DeploymentConfig
from engine.deployments.balancer import reporting
from engine.deployments.fleet import group_id
from engine.deployments.ordering import ordered_targets
from engine.deployments.run import MANUAL_STOP, RevisionPayload, RunContext, StopRequest
from engine.deployments.steps import (
    ALLOW_TRAFFIC,
    BLOCK_TRAFFIC,
    LifecycleStep,
    StepResult,
    lifecycle_steps,
)
from engine.deployments.triggers import TriggerDispatcher, deployment_message, instance_message
from engine.model import (
    CREATOR_ROLLBACK,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SERVER_IN_PLACE_EVENTS,
    SERVER_IN_PLACE_TRAFFIC_EVENTS,
    SKIPPED,
    STOP_EVENTS,
    STOPPED,
    SUCCEEDED,
    DeploymentInfo,
    Diagnostics,
)
from engine.store import Store, StoreError, log_locked
from engine.targets.base import AgentMessage, Target
from engine.targets.local import ProcessWatch

if TYPE_CHECKING:
    from engine.deployments.alarms import DeploymentAlarms
    from engine.traffic.model import LoadBalancer

# The events that change an instance (the new revision's, from ApplicationStop on).
INSTALL_EVENTS = frozenset(SERVER_IN_PLACE_EVENTS)
LOAD_BALANCER_ERROR = "LOAD_BALANCER_ERROR"

# A write blocked by another process's lock gives up after LOCKED_TRY_SECONDS and is tried
# again after a pause that doubles up to LOCKED_PAUSE_MAX; the runner's log says so.
LOCKED_TRY_SECONDS = 0.2
LOCKED_PAUSE_MIN = 0.1
LOCKED_PAUSE_MAX = 5.0
LOCKED_SAY_EVERY = 5.0


def start_in_place(context: RunContext) -> InPlaceRun:
    """The run strategy of Server in-place deployments without traffic control: the
    instances in CodeDeploy's order (a resumed run keeps its recorded order; a rollback
    targets the instances its cause touched), each reached through its Target."""
    return InPlaceRun(**_in_place_arguments(context))


def start_in_place_with_traffic(context: RunContext) -> InPlaceRun:
    """Server in-place with traffic control: the same run with BlockTraffic and AllowTraffic
    (and their hooks) around every instance's install, done by the group's load balancer."""
    from engine.deployments.balancer import BalancerConfigError, group_balancer

    d = context.deployment
    balancer: LoadBalancer | None = None
    problem: str | None = None
    try:
        balancer = group_balancer(
            context.workspace, d.application, d.deployment_group, context.clock
        )
    except BalancerConfigError as error:
        problem = str(error)
    return InPlaceRun(
        **_in_place_arguments(context),
        lifecycle=SERVER_IN_PLACE_TRAFFIC_EVENTS,
        balancer=balancer,
        balancer_problem=problem,
    )


def _in_place_arguments(context: RunContext) -> dict[str, Any]:
    deployment = context.deployment
    app, group_name = deployment.application, deployment.deployment_group
    if context.resume:
        order = [i.name for i in deployment.instances]
    elif (
        deployment.creator == CREATOR_ROLLBACK
        and deployment.rollback.rollback_triggering_deployment_id
    ):
        cause = context.store.get_deployment(deployment.rollback.rollback_triggering_deployment_id)
        order = [i.name for i in cause.instances if i.status != SKIPPED]
    else:
        order = ordered_targets(
            context.store,
            context.workspace,
            app,
            group_name,
            deployment.revision.sha256,
            outdated_only=deployment.options.update_outdated_instances_only,
        )
    return {
        "store": context.store,
        "clock": context.clock,
        "deployment": deployment,
        "config": context.config,
        "targets": context.targets_for(context.workspace, order, context.watch),
        "order": order,
        "revision": context.revision,
        "group_id": group_id(app, group_name),
        "triggers": context.triggers,
        "redact": context.redact,
        "alarms": context.alarms,
        "watch": context.watch,
    }


class InPlaceRun:
    """Runs one Server in-place deployment to the end (or to a stop)."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        deployment: DeploymentInfo,
        config: DeploymentConfig,
        targets: dict[str, Target],
        order: Sequence[str],
        revision: RevisionPayload,
        group_id: str,
        triggers: TriggerDispatcher,
        redact: Callable[[str], str] = lambda text: text,
        lifecycle: Sequence[str] = SERVER_IN_PLACE_EVENTS,
        balancer: LoadBalancer | None = None,
        balancer_problem: str | None = None,
        alarms: DeploymentAlarms | None = None,
        watch: ProcessWatch | None = None,
    ) -> None:
        self.store = store
        self.watch = watch  # told of an owned balancer's process group, as of hooks'
        self._balancer_group: int | None = None
        self.clock = clock
        self.deployment = deployment
        self.config = config
        self.targets = targets
        self.order = tuple(order)
        self.revision = revision
        self.group_id = group_id
        self.triggers = triggers
        self.redact = redact
        self.lifecycle = tuple(lifecycle)
        balancer = reporting(balancer, deployment.id, clock, self.publish)
        self.steps: dict[str, LifecycleStep] = lifecycle_steps(
            self.lifecycle, self._agent_command, balancer
        )
        self.balancer = balancer
        self.balancer_problem = balancer_problem
        self._balancer_started = False
        # Instances a stop caught after BlockTraffic began but before any of the new revision's
        # events: nothing of theirs changed, so the stop puts them back in service.
        self._blocked_untouched: set[str] = set()
        self.scheduler = BatchScheduler(config, self.order)
        self.alarms = alarms
        self.stop_request: StopRequest | None = None
        self._batch_task: asyncio.Task[None] | None = None
        self._batch_index = 0
        self._pending: list[ev.Event] = []
        self._flush_scheduled = False
        self.file_exists_behavior, self._behavior_source = self._rollback_behavior()
        self._locked_pause = LOCKED_PAUSE_MIN
        self._locked_said = -LOCKED_SAY_EVERY

    def _rollback_behavior(self) -> tuple[str, str | None]:
        """What Install does with files in the way, and the deployment it comes from. A
        rollback redeploys the last good revision with the settings of the deployment that
        installed it (its own options are those of the deployment that failed); any other
        deployment uses its own."""
        own = self.deployment.options.file_exists_behavior
        if self.deployment.rollback.rollback_triggering_deployment_id is None:
            return own, None
        d = self.deployment
        for earlier in self.store.list_deployments(d.application, d.deployment_group, [SUCCEEDED]):
            if (
                earlier.revision.sha256 == d.revision.sha256
                and earlier.rollback.rollback_triggering_deployment_id is None
            ):
                return earlier.options.file_exists_behavior, earlier.id
        return own, None

    # ---- journal ------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.deployment.id

    def publish(self, event: ev.Event) -> None:
        """Journal an event: batched with the others of this loop pass, written before the
        next side effect (`_run_event` flushes before it runs anything) and before any read."""
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        """The batch of a loop pass. While another process holds the database locked, the
        events wait here and the write is tried again later: hooks, their timeouts and
        stops go on meanwhile."""
        try:
            written = self._try_flush()
        except StoreError as error:  # a full disk...: the next awaited flush ends the run
            print(f"deploydeck runner: cannot record events: {error}", file=sys.stderr, flush=True)
            return
        if written:
            self._flush_scheduled = False
        else:
            self._locked_pause = min(self._locked_pause * 2, LOCKED_PAUSE_MAX)
            asyncio.get_running_loop().call_later(self._locked_pause, self._flush_soon)

    def _try_flush(self) -> bool:
        if not self._pending:
            return True
        if not self.store.try_append_many(self._pending, LOCKED_TRY_SECONDS):
            if time.monotonic() - self._locked_said >= LOCKED_SAY_EVERY:
                self._locked_said = time.monotonic()
                log_locked(
                    f"{self.store.path} is locked by another process; this deployment's "
                    f"{len(self._pending)} newest event(s) wait to be recorded, hooks go on"
                )
            return False
        self._pending = []
        self._locked_pause = LOCKED_PAUSE_MIN
        return True

    async def flushed(self) -> None:
        """Until everything published is journaled; a locked database is waited out
        without holding up the event loop."""
        if self._pending:
            # One loop pass first: the flush publish() scheduled then writes what every
            # instance published in this pass in one transaction, not one per instance.
            await asyncio.sleep(0)
        pause = LOCKED_PAUSE_MIN
        while not self._try_flush():
            await asyncio.sleep(pause)
            pause = min(pause * 2, LOCKED_PAUSE_MAX)

    def flush(self) -> None:
        """Journal what is pending now, waiting (blocking) for a locked database."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.store.append_many(batch)

    def now(self) -> float:
        return self.clock.now()

    def note(self, message: str, level: str = "info", instance: str | None = None) -> None:
        self.publish(ev.Note(self.id, self.now(), self.redact(message), level, instance))

    # ---- control ------------------------------------------------------------------------

    async def close(self) -> None:
        for target in self.targets.values():
            await target.close()
        if self.balancer is not None and self._balancer_started:
            await self.balancer.close()
            if self.watch is not None and self._balancer_group is not None:
                self.watch.forget(self._balancer_group)

    def request_stop(self, request: StopRequest) -> None:
        """Stop at once: the running batch is cancelled, its hooks' process groups ended."""
        if self.stop_request is None:
            self.stop_request = request
            if self._batch_task is not None:
                self._batch_task.cancel()

    # ---- the run ------------------------------------------------------------------------

    async def run(self, *, resume: bool = False) -> DeploymentInfo:
        if not resume:
            self.publish(
                ev.InstancesTargeted(
                    self.id,
                    self.now(),
                    self.order,
                    tuple(self.targets[n].host for n in self.order),
                    self.lifecycle,
                    self.scheduler.minimum,
                )
            )
            self.publish(ev.DeploymentStatusChanged(self.id, self.now(), IN_PROGRESS))
            if self._behavior_source is not None:
                self.note(
                    f"file_exists_behavior {self.file_exists_behavior}, as {self._behavior_source} "
                    f"installed revision {self.deployment.revision.short()}"
                )
            self.fire_deployment("DeploymentStart")
            problem = self.scheduler.start_problem()
            if problem is not None:
                return await self.finish(FAILED, problem.error_code, problem.message)
        balancer_problem = await self._start_balancer()
        if balancer_problem is not None:
            return await self.finish(FAILED, LOAD_BALANCER_ERROR, balancer_problem)
        if resume:
            await self._alarm_check()
            if self.stop_request is None:
                await self._resume_batches()
        while self.stop_request is None:
            if await self._alarm_check():
                break
            batch = self.scheduler.next_batch()
            if not batch:
                break
            self._batch_index += 1
            self.publish(ev.BatchStarted(self.id, self.now(), self._batch_index, batch))
            await self._run_batch(batch)
        if self.stop_request is not None:
            await self._restore_untouched()
            return await self.finish(
                STOPPED,
                self.stop_request.reason,
                self.stop_request.message
                or (
                    "The deployment was stopped on request"
                    if self.stop_request.reason == MANUAL_STOP
                    else "The deployment was stopped"
                ),
            )
        outcome = self.scheduler.outcome()
        if outcome.succeeded:
            return await self.finish(SUCCEEDED, None, outcome.message)
        return await self.finish(FAILED, outcome.error_code, outcome.message)

    async def _alarm_check(self) -> bool:
        """Evaluate the alarms before a batch; True when one tripped and stopped the run."""
        if self.alarms is None or self.scheduler.finished:
            return False
        stop = await self.alarms.check()
        if stop is not None:
            self.request_stop(stop)
        return self.stop_request is not None

    async def _start_balancer(self) -> str | None:
        """Start the group's balancer (traffic control only); why it cannot, or None."""
        if self.balancer_problem is not None:
            return self.balancer_problem
        if self.balancer is None or self._balancer_started:
            return None
        from engine.traffic.model import TrafficError

        try:
            await self.balancer.start()
        except TrafficError as error:
            return f"the {self.balancer.kind} load balancer did not start: {error}"
        self._balancer_started = True
        # A balancer process deploydeck owns (HAProxy) is ended by the watchdog if we die.
        inner = getattr(self.balancer, "inner", self.balancer)  # under a reporting wrapper
        owned = getattr(inner, "owned_process", None)
        if owned is not None and self.watch is not None:
            self._balancer_group = owned.proc.pid  # started in a session of its own
            self.watch.watch(self._balancer_group)
        self.note(f"{self.balancer.kind} load balancer started for {self.group_id}")
        return None

    async def _restore_untouched(self) -> None:
        """After a stop: instances caught between BlockTraffic and their first install event
        still run the old revision untouched, so they go back in service (once healthy)
        rather than leave the group short of instances; the others stay out until a
        deployment (the rollback) allows them."""
        if self.balancer is None or not self._blocked_untouched:
            return
        from engine.traffic.model import TrafficError

        for name in sorted(self._blocked_untouched, key=self.order.index):
            try:
                allowed = await self.balancer.allow(name)
            except TrafficError as error:
                self.note(f"{name} stays out of service after the stop: {error}", "warning", name)
                continue
            self.note(
                f"{name} was stopped before any install event: back in service "
                f"(healthy after {allowed.seconds:.1f} s)",
                instance=name,
            )
        self._blocked_untouched.clear()

    async def _resume_batches(self) -> None:
        """Rebuild the scheduler from the journal; re-run instances a crash interrupted."""
        await self.flushed()
        current = {i.name: i for i in self.store.get_deployment(self.id).instances}
        while True:
            batch = self.scheduler.next_batch()
            if not batch:
                return
            self._batch_index += 1
            recorded = [current[n] for n in batch]
            if all(i.batch is None for i in recorded):
                # never started: hand it back to the normal loop by running it here
                self.publish(ev.BatchStarted(self.id, self.now(), self._batch_index, batch))
                await self._run_batch(batch)
                return
            rerun = tuple(i.name for i in recorded if i.status not in (SUCCEEDED, FAILED))
            for instance in recorded:
                if instance.status in (SUCCEEDED, FAILED):
                    self.scheduler.record(instance.name, instance.status == SUCCEEDED)
            if rerun:
                self.note(f"resuming batch {self._batch_index}: redeploying {', '.join(rerun)}")
                await self._run_batch(rerun)
                return

    async def _run_batch(self, batch: Sequence[str]) -> None:
        self._batch_task = asyncio.create_task(self._batch(batch))
        try:
            await self._batch_task
        except asyncio.CancelledError:
            if self.stop_request is None:
                raise
        finally:
            self._batch_task = None

    async def _batch(self, batch: Sequence[str]) -> None:
        async with asyncio.TaskGroup() as group:
            for name in batch:
                group.create_task(self._deploy_instance(name))

    async def _deploy_instance(self, name: str) -> None:
        target = self.targets[name]
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), name, IN_PROGRESS))
        self.fire_instance("InstanceStart", name)
        remaining = list(self.lifecycle)
        try:
            async with target.session():
                while remaining:
                    event = remaining.pop(0)
                    if event == BLOCK_TRAFFIC:
                        self._blocked_untouched.add(name)
                    elif event in INSTALL_EVENTS or event == ALLOW_TRAFFIC:
                        self._blocked_untouched.discard(name)
                    result = await self._run_event(target, event)
                    if result.ok or self._failure_ignored(event, name):
                        continue
                    self._blocked_untouched.discard(name)
                    self._skip_events(name, remaining)
                    self._instance_done(name, False)
                    return
        except asyncio.CancelledError:
            self._skip_events(name, remaining)
            self._instance_done(name, False, stopped=True)
            raise
        self._instance_done(name, True)

    def _failure_ignored(self, event: str, name: str) -> bool:
        """Whether `event`'s failure on `name` is let pass: ApplicationStop and the block
        events under ignoreApplicationStopFailures (said as a warning)."""
        if event not in STOP_EVENTS or not self.deployment.options.ignore_application_stop_failures:
            return False
        self.note(
            f"{event} failed on {name} and was ignored "
            "(ignoreApplicationStopFailures): the deployment continues",
            "warning",
            name,
        )
        return True

    def _agent_command(self, event: str) -> dict[str, Any]:
        """The agent command of one lifecycle event of this deployment."""
        return {
            "command": event,
            "deployment_id": self.id,
            "deployment_group_id": self.group_id,
            "deployment_group_name": self.deployment.deployment_group,
            "application_name": self.deployment.application,
            "deployment_creator": self.deployment.creator,
            "deployment_type": str(self.deployment.deployment_style.deployment_type),
            "bundle": {
                "path": self.revision.bundle_path,
                "type": self.revision.bundle_type,
                "sha256": self.revision.sha256,
            },
            "appspec": self.revision.appspec,
            "file_exists_behavior": self.file_exists_behavior,
        }

    async def _run_event(self, target: Target, event: str) -> StepResult:
        name = target.name
        self.publish(ev.LifecycleEventStarted(self.id, self.now(), name, event))
        try:
            await self.flushed()  # what is about to happen is journaled before it happens
            result = await self.steps[event].run(
                target, lambda m: self._on_agent_message(name, event, m)
            )
        except asyncio.CancelledError:
            diagnostics: Diagnostics | None = Diagnostics(
                "UnknownError", None, f"Stopped during {event}: its running script was ended"
            )
            self.publish(
                ev.LifecycleEventFinished(self.id, self.now(), name, event, FAILED, diagnostics)
            )
            raise
        if result.status == SUCCEEDED and event == "Install":
            self.publish(
                ev.InstanceRevisionChanged(self.id, self.now(), name, self.revision.sha256)
            )
        diagnostics = result.diagnostics
        if diagnostics is not None:
            diagnostics = Diagnostics(
                diagnostics.error_code,
                diagnostics.script_name,
                self.redact(diagnostics.message),
                self.redact(diagnostics.log_tail),
                diagnostics.exit_code,
            )
        self.publish(
            ev.LifecycleEventFinished(
                self.id,
                self.now(),
                name,
                event,
                result.status,
                diagnostics,
                self.redact(result.note),
            )
        )
        return result

    def _on_agent_message(self, instance: str, event: str, message: AgentMessage) -> None:
        kind = message.get("type")
        when = float(message.get("time") or self.now())
        if kind == "output":
            self.publish(
                ev.HookOutput(
                    self.id,
                    when,
                    instance,
                    event,
                    str(message.get("location")),
                    str(message.get("stream")),
                    self.redact(str(message.get("line"))),
                )
            )
        elif kind == "script_spawned":
            self.publish(
                ev.ScriptStarted(
                    self.id, when, instance, event, str(message.get("location")), message.get("pid")
                )
            )
        elif kind == "note":
            self.note(str(message.get("message")), instance=instance)
        elif kind == "connection":
            self.publish(
                ev.InstanceConnection(
                    self.id,
                    when,
                    instance,
                    str(message.get("state")),
                    str(message.get("host")),
                    self.redact(str(message.get("detail") or "")),
                )
            )

    def _skip_events(self, instance: str, events: Sequence[str]) -> None:
        for event in events:
            self.publish(ev.LifecycleEventFinished(self.id, self.now(), instance, event, SKIPPED))

    def _instance_done(self, name: str, succeeded: bool, stopped: bool = False) -> None:
        self.publish(
            ev.InstanceStatusChanged(self.id, self.now(), name, SUCCEEDED if succeeded else FAILED)
        )
        if not stopped:
            self.scheduler.record(name, succeeded)
        self.fire_instance("InstanceSuccess" if succeeded else "InstanceFailure", name)

    async def finish(self, status: str, error_code: str | None, message: str) -> DeploymentInfo:
        """Skip what never started, set the final status, fire triggers; the last word."""
        await self.flushed()
        current = self.store.get_deployment(self.id)
        for instance in current.instances:
            if instance.status == PENDING:
                self._skip_events(
                    instance.name, [e.name for e in instance.events if e.status == PENDING]
                )
                self.publish(ev.InstanceStatusChanged(self.id, self.now(), instance.name, SKIPPED))
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), status, error_code, message))
        await self.flushed()
        final = self.store.get_deployment(self.id)
        trigger = {
            SUCCEEDED: "DeploymentSuccess",
            FAILED: "DeploymentFailure",
            STOPPED: "DeploymentStop",
        }
        self.fire_deployment(trigger[status], final)
        await self.triggers.drain()
        return final

    # ---- triggers -----------------------------------------------------------------------

    def fire_deployment(self, event: str, deployment: DeploymentInfo | None = None) -> None:
        if self.triggers.wants(event):
            self.flush()
            info = deployment or self.store.get_deployment(self.id)
            self.triggers.fire(event, lambda trigger: deployment_message(trigger, info))

    def fire_instance(self, event: str, instance: str) -> None:
        if self.triggers.wants(event):
            self.flush()
            info = self.store.get_deployment(self.id).instance(instance)
            if info is not None:
                now = self.now()
                self.triggers.fire(
                    event, lambda trigger: instance_message(trigger, self.id, info, now)
                )
