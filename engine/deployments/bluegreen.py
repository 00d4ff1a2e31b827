"""Server blue/green deployments: a replacement (green) fleet gets the revision, then the load
balancer's traffic moves to it from the original (blue) fleet
(docs/codedeploy-service.md#blue-green-deployments).

A deployment: the install events on green (all at once; green takes no traffic), the ready
wait (none, or status Ready until continue-deployment or the wait time runs out), then batch by
batch per the deployment config: AllowTraffic (with its hooks) on green, BlockTraffic (with its
hooks) on blue; then the termination wait, and ApplicationStop on blue (TERMINATE: blue leaves
the group, copies are deleted) or nothing (KEEP_ALIVE: blue leaves the group, running). Each
instance shows only its own fleet's events; the others are Skipped at once.

A rollback of a blue/green deployment (a new deployment, as in CodeDeploy) moves traffic back:
AllowTraffic on the cause's blue instances, BlockTraffic on its green ones. It cannot once blue
was terminated. A stop ends what runs (hooks' process groups, a traffic wait) and the run ends
Stopped with traffic where it was; the rollback, when due, is what puts it back on blue.
A run whose engine process died resumes only in the ready or termination wait (no hook runs
there, and the journal says which fleet serves): traffic stays on that fleet, the wait goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.configs.batches import minimum_healthy
from engine.deployments.bluegreen_fleet import (
    Copy,
    FleetError,
    Fleets,
    Membership,
    choose_fleets,
    remove_copy,
)
from engine.deployments.fleet import group_id
from engine.deployments.inplace import LOAD_BALANCER_ERROR, InPlaceRun
from engine.deployments.run import MANUAL_STOP, RunContext
from engine.model import (
    CREATOR_ROLLBACK,
    FAILED,
    IN_PROGRESS,
    PENDING,
    READY,
    SERVER_IN_PLACE_EVENTS,
    SKIPPED,
    STOPPED,
    SUCCEEDED,
    BlueGreenInfo,
    BlueInstanceAction,
    DeploymentInfo,
    ReadyAction,
    WaitType,
)
from engine.workspace.model import BlueGreenConfig

if TYPE_CHECKING:
    from engine.traffic.model import LoadBalancer

ALLOW_EVENTS = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
BLOCK_EVENTS = ("BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic")
# Every instance lists these; each runs its fleet's and skips the rest
# (docs/codedeploy-service.md#hooks-by-scenario).
BLUE_GREEN_EVENTS: tuple[str, ...] = (*SERVER_IN_PLACE_EVENTS, *ALLOW_EVENTS, *BLOCK_EVENTS)
GREEN = "Green"
BLUE = "Blue"
CONTINUE_POLL_SECONDS = 0.1
HEALTH_CONSTRAINTS = "HEALTH_CONSTRAINTS"
TIMEOUT = "TIMEOUT"


def start_blue_green(context: RunContext) -> BlueGreenRun:
    """The run strategy of Server blue/green deployments (with traffic control)."""
    d = context.deployment
    group = context.workspace.group(d.application, d.deployment_group)
    config = group.blue_green or BlueGreenConfig()
    membership = Membership(context.workspace, d.application, d.deployment_group)
    problem: str | None = None
    fleets = Fleets((), ())
    copies: dict[str, Copy] = {}
    resumed: BlueGreenInfo | None = None
    try:
        if context.resume:
            resumed, fleets, copies = resumed_fleets(context, membership)
        elif d.creator == CREATOR_ROLLBACK and d.rollback.rollback_triggering_deployment_id:
            fleets = rollback_fleets(context, membership)
        else:
            fleets, copies = choose_fleets(
                context.workspace, d.application, d.deployment_group, config, d.id
            )
            if fleets.copied:  # recorded before they exist, so a rollback can find them
                membership.save(membership.live_names(), copies)
    except FleetError as error:
        problem = str(error)
    workspace = fleets.workspace(context.workspace)
    balancer: LoadBalancer | None = None
    if problem is None:
        from engine.deployments.balancer import BalancerConfigError, group_balancer

        try:
            balancer = group_balancer(
                workspace,
                d.application,
                d.deployment_group,
                context.clock,
                (*fleets.blue, *fleets.green),
            )
        except BalancerConfigError as error:
            problem = str(error)
    order = list(fleets.names)
    arguments = {
        "store": context.store,
        "clock": context.clock,
        "deployment": d,
        "config": context.config,
        "targets": context.targets_for(workspace, order, context.watch) if order else {},
        "order": order,
        "revision": context.revision,
        "group_id": group_id(d.application, d.deployment_group),
        "triggers": context.triggers,
        "redact": context.redact,
        "alarms": context.alarms,
        "watch": context.watch,
    }
    return BlueGreenRun(
        **arguments,
        lifecycle=BLUE_GREEN_EVENTS,
        balancer=balancer,
        balancer_problem=problem,
        fleets=fleets,
        blue_green=config,
        membership=membership,
        copies=copies,
        resumed=resumed,
    )


def resumed_fleets(
    context: RunContext, membership: Membership
) -> tuple[BlueGreenInfo, Fleets, dict[str, Copy]]:
    """The fleets of a deployment whose engine process died in its ready or termination wait
    (no hook runs then, so the wait can go on); any other moment cannot be carried on."""
    d = context.deployment
    info = context.store.blue_green(d.id)
    waiting = info is not None and info.wait_type in (
        WaitType.READY_WAIT,
        WaitType.TERMINATION_WAIT,
    )
    if info is None or not waiting or d.creator == CREATOR_ROLLBACK:
        raise FleetError(
            "its engine process was interrupted outside its ready and termination waits, and a "
            "blue/green deployment resumes only in those: stop it or roll it back, then deploy "
            "again"
        )
    fleets = Fleets(membership.named(info.blue), membership.named(info.green), info.copied)
    copies = {name: c for name, c in membership.copies().items() if name in info.copied}
    return info, fleets, copies


def rollback_fleets(context: RunContext, membership: Membership) -> Fleets:
    """The cause's fleets, for a rollback: blue gets traffic back, green loses it."""
    cause_id = context.deployment.rollback.rollback_triggering_deployment_id
    assert cause_id is not None
    info = context.store.blue_green(cause_id)
    if info is None:
        raise FleetError(f"{cause_id} recorded no blue/green fleets: there is nothing to move back")
    cause = context.store.get_deployment(cause_id)
    stopped = [
        i.name
        for i in cause.instances
        if i.name in info.blue
        and any(e.name == "ApplicationStop" and e.status == SUCCEEDED for e in i.events)
    ]
    if stopped:
        raise FleetError(
            f"the original instances of {cause_id} were already terminated ({', '.join(stopped)}):"
            " traffic can only go back while they run; deploy the earlier revision instead"
        )
    return Fleets(membership.named(info.blue), membership.named(info.green))


class BlueGreenRun(InPlaceRun):
    """Runs one Server blue/green deployment (or the rollback of one) to its end."""

    def __init__(
        self,
        *,
        fleets: Fleets,
        blue_green: BlueGreenConfig,
        membership: Membership,
        copies: dict[str, Copy],
        resumed: BlueGreenInfo | None = None,
        **arguments: Any,
    ) -> None:
        super().__init__(**arguments)
        self.resumed = resumed  # resuming in this wait, after its engine process died
        self.fleets = fleets
        self.blue = tuple(i.name for i in fleets.blue)
        self.green = tuple(i.name for i in fleets.green)
        self.settings = blue_green
        self.membership = membership
        self.copies = copies
        self.rolling_back = self.deployment.creator == CREATOR_ROLLBACK
        self._rerouted = False

    # ---- the run ------------------------------------------------------------------------

    async def run(self, *, resume: bool = False) -> DeploymentInfo:
        if self.resumed is not None:
            return await self._resume(self.resumed)
        hosts = tuple(self.targets[n].host for n in self.order)
        # the fleet taking traffic (blue, then green: the same size) keeps this many healthy
        serving = minimum_healthy(self.config, len(self.blue)) if self.blue else 0
        self.publish(
            ev.InstancesTargeted(self.id, self.now(), self.order, hosts, self.lifecycle, serving)
        )
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), IN_PROGRESS))
        self.fire_deployment("DeploymentStart")
        problem = self.balancer_problem
        if problem is not None:
            code = "NO_INSTANCES" if not self.order else LOAD_BALANCER_ERROR
            return await self.finish(FAILED, code, problem)
        self.publish(
            ev.BlueGreenFleets(self.id, self.now(), self.blue, self.green, self.fleets.copied)
        )
        for name in self.order:
            self._skip_unavailable(name)
        problem = await self._start_balancer()
        if problem is not None:
            return await self.finish(FAILED, LOAD_BALANCER_ERROR, problem)
        await self._initial_traffic()
        if self.rolling_back:
            return await self._roll_back()
        return await self._deploy()

    async def _resume(self, info: BlueGreenInfo) -> DeploymentInfo:
        """Carry on from the wait the dead engine process was in: the balancer (started again
        if it is not running) has traffic on the fleet that had it, and the wait goes on to its
        recorded deadline."""
        problem = self.balancer_problem or await self._start_balancer()
        if problem is not None:
            return await self._end(FAILED, LOAD_BALANCER_ERROR, problem)
        await self._initial_traffic()
        self.note(
            f"resumed in its {info.wait_type}, with traffic on the {info.traffic_on.lower()} fleet"
        )
        if info.wait_type == WaitType.READY_WAIT:
            return await self._deploy(resume_ready_until=info.wait_deadline)
        self._rerouted = True
        return await self._after_reroute(info.wait_deadline)

    def _events_of(self, name: str) -> tuple[str, ...]:
        """The events `name` runs in this deployment (CodeDeploy's hook table)."""
        if self.rolling_back:
            return ALLOW_EVENTS if name in self.blue else BLOCK_EVENTS
        if name in self.green:
            return (*SERVER_IN_PLACE_EVENTS, *ALLOW_EVENTS)
        terminate = self.settings.blue_action == BlueInstanceAction.TERMINATE
        return (*BLOCK_EVENTS, "ApplicationStop") if terminate else BLOCK_EVENTS

    def _skip_unavailable(self, name: str) -> None:
        fleet = "original (blue)" if name in self.blue else "replacement (green)"
        runs = self._events_of(name)
        for event in self.lifecycle:
            if event not in runs:
                self.publish(
                    ev.LifecycleEventFinished(
                        self.id,
                        self.now(),
                        name,
                        event,
                        SKIPPED,
                        note=f"not run on an {fleet} instance",
                    )
                )

    async def _initial_traffic(self) -> None:
        """Only the fleet serving before this run takes traffic from the start."""
        assert self.balancer is not None
        from engine.traffic.model import TrafficError

        out = self.green
        if self.resumed is not None and self.resumed.traffic_on == GREEN:
            out = self.blue
        elif self.rolling_back:
            cause = self.deployment.rollback.rollback_triggering_deployment_id
            info = self.store.blue_green(cause) if cause else None
            out = self.blue if info is not None and info.traffic_on == GREEN else self.green
        for name in out:
            try:
                await self.balancer.block(name)
            except TrafficError as error:
                self.note(f"{name} could not be taken out of service: {error}", "warning", name)

    async def _deploy(self, resume_ready_until: float | None = None) -> DeploymentInfo:
        """Install on green, the ready wait, the reroute, then what becomes of blue. Resumed
        in the ready wait (`resume_ready_until`: its deadline): from that wait."""
        resuming = self.resumed is not None
        if not resuming and not await self._phase(self._install_green()):
            return await self._end(FAILED, HEALTH_CONSTRAINTS, self._failed_message("install"))
        waited = await self._ready_wait(resume_ready_until if resuming else None)
        if waited is not None:
            return waited
        if not await self._reroute(self.green, self.blue):
            return await self._end(FAILED, HEALTH_CONSTRAINTS, self._failed_message("reroute"))
        self.publish(ev.FleetTrafficMoved(self.id, self.now(), GREEN))
        self._rerouted = True
        return await self._after_reroute()

    async def _after_reroute(self, termination_until: float | None = None) -> DeploymentInfo:
        """The termination wait (to `termination_until` when resumed in it), then blue
        terminated or kept alive, and the group's membership saved."""
        terminate = self.settings.blue_action == BlueInstanceAction.TERMINATE
        if terminate:
            minutes = self.settings.termination_wait_minutes
            if not await self._phase(
                self._wait(
                    WaitType.TERMINATION_WAIT, minutes, "TERMINATE", minutes > 0, termination_until
                )
            ):
                return await self._end(STOPPED, None, "")
            if not await self._phase(self._terminate_blue()):
                return await self._end(FAILED, HEALTH_CONSTRAINTS, self._failed_message("stop"))
        else:
            for name in self.blue:
                self._done(name, True)
            self.note(
                f"KEEP_ALIVE: {', '.join(self.blue)} left the group and keep running, "
                "out of service"
            )
        self.membership.save(self.green, self._kept_copies(terminated=terminate))
        for name in self.green:
            self._done(name, True)
        return await self.finish(SUCCEEDED, None, "")

    async def _roll_back(self) -> DeploymentInfo:
        if not await self._reroute(self.blue, self.green):
            return await self._end(FAILED, HEALTH_CONSTRAINTS, self._failed_message("reroute"))
        self.publish(ev.FleetTrafficMoved(self.id, self.now(), BLUE))
        for name in self.green:
            if name in self.copies or name in self.membership.copies():
                self.note(
                    f"copied instance {name} stays in its folder, out of service: no "
                    "deployment uses it again",
                    instance=name,
                )
        return await self.finish(SUCCEEDED, None, "")

    async def finish(self, status: str, error_code: str | None, message: str) -> DeploymentInfo:
        """As an in-place run ends, with every event that never ran Skipped."""
        await self.flushed()
        for instance in self.store.get_deployment(self.id).instances:
            pending = [e.name for e in instance.events if e.status == PENDING]
            if pending and instance.status != PENDING:
                self._skip_events(instance.name, pending)
        return await super().finish(status, error_code, message)

    def _kept_copies(self, terminated: bool) -> dict[str, Copy]:
        copies = self.membership.copies()
        if terminated:
            for name in self.blue:
                copies.pop(name, None)
        return copies

    async def _end(self, status: str, code: str | None, message: str) -> DeploymentInfo:
        """End short of success: a stop's reason wins over what the cancelled phase saw.
        Instances caught midway (installed green waiting, blue waiting for termination)
        end Failed, as an in-place instance a stop interrupts does."""
        await self.flushed()
        for instance in self.store.get_deployment(self.id).instances:
            if instance.status in (IN_PROGRESS, READY):
                self._done(instance.name, False)
        stop = self.stop_request
        if stop is not None:
            status, code = STOPPED, stop.reason
            message = stop.message or (
                "The deployment was stopped on request"
                if stop.reason == MANUAL_STOP
                else "The deployment was stopped"
            )
        if not self.rolling_back:
            where = GREEN if self._rerouted else BLUE
            message += f" (traffic is on the {where.lower()} fleet)"
        return await self.finish(status, code, message)

    def _failed_message(self, step: str) -> str:
        current = self.store.get_deployment(self.id)
        failed = [i.name for i in current.instances if i.status == FAILED]
        what = {
            "install": "the revision's install on the replacement (green) instances failed",
            "reroute": "moving traffic between the fleets failed",
            "stop": "ApplicationStop on the original (blue) instances failed",
        }[step]
        return f"{what}: {', '.join(failed) or 'see the instances'}"

    # ---- phases -------------------------------------------------------------------------

    async def _phase(self, work: Any) -> bool:
        """Run one phase so a stop cancels it; whether it ended well and no stop came."""
        self._batch_task = asyncio.ensure_future(work)
        try:
            ok = bool(await self._batch_task)
        except asyncio.CancelledError:
            if self.stop_request is None:
                raise
            ok = False
        finally:
            self._batch_task = None
        return ok and self.stop_request is None

    async def _install_green(self) -> bool:
        self.publish(ev.BatchStarted(self.id, self.now(), 1, self.green))
        for name in self.green:
            self._started(name)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._instance_events(name, SERVER_IN_PLACE_EVENTS))
                for name in self.green
            ]
        results = [t.result() for t in tasks]
        for name, ok in zip(self.green, results, strict=True):
            if not ok:
                self._done(name, False)
        return all(results)

    async def _ready_wait(self, resumed_until: float | None = None) -> DeploymentInfo | None:
        """Wait in Ready when the settings ask; a finished deployment when the wait stops it.
        Resumed (`resumed_until`: the wait's deadline): already Ready, its triggers fired."""
        settings = self.settings
        if not settings.waits_ready:
            return None
        if self.resumed is None:
            self.publish(ev.DeploymentStatusChanged(self.id, self.now(), READY))
            for name in self.green:
                self.publish(ev.InstanceStatusChanged(self.id, self.now(), name, READY))
                self.fire_instance("InstanceReady", name)
            self.fire_deployment("DeploymentReady")
        action = str(settings.ready_action)
        continued = await self._phase(
            self._wait(
                WaitType.READY_WAIT, settings.ready_wait_minutes, action, True, resumed_until
            )
        )
        if not continued and self.stop_request is None:  # timed out with STOP_DEPLOYMENT
            return await self._end(
                STOPPED,
                TIMEOUT,
                f"Nobody continued the deployment within its ready wait "
                f"({settings.ready_wait_minutes:g} min): traffic stays on the original (blue) "
                "fleet",
            )
        if self.stop_request is not None:
            return await self._end(STOPPED, None, "")
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), IN_PROGRESS))
        for name in self.green:
            self.publish(ev.InstanceStatusChanged(self.id, self.now(), name, IN_PROGRESS))
        return None

    async def _wait(
        self,
        wait_type: WaitType,
        minutes: float,
        action: str,
        bounded: bool,
        until: float | None = None,
    ) -> bool:
        """Wait until continue-deployment or `minutes` pass (to `until`, a resumed wait's
        recorded deadline, if sooner); True to go on. A ready wait that runs out goes on only
        with CONTINUE_DEPLOYMENT; a termination wait always does."""
        if minutes <= 0:
            return True
        deadline = self.now() + minutes * 60 if bounded else None
        if deadline is not None and until is not None:
            deadline = min(deadline, until)
        after = self.store.last_seq()
        self.publish(ev.FleetWaitStarted(self.id, self.now(), str(wait_type), deadline, action))
        await self.flushed()
        how = "timed out"
        try:
            while deadline is None or self.now() < deadline:
                if any(
                    isinstance(e.event, ev.ContinueRequested) and e.event.wait_type == wait_type
                    for e in self.store.journal_of_kind(self.id, ev.ContinueRequested.kind, after)
                ):
                    how = "continued"
                    break
                pause = CONTINUE_POLL_SECONDS
                if deadline is not None:
                    pause = min(pause, max(deadline - self.now(), 0.0))
                await self.clock.sleep(pause)
        except asyncio.CancelledError:
            self.publish(ev.FleetWaitEnded(self.id, self.now(), str(wait_type), "stopped"))
            raise
        self.publish(ev.FleetWaitEnded(self.id, self.now(), str(wait_type), how))
        if how == "continued":
            return True
        return wait_type == WaitType.TERMINATION_WAIT or action == ReadyAction.CONTINUE_DEPLOYMENT

    async def _reroute(self, to: Sequence[str], away: Sequence[str]) -> bool:
        """Allow traffic on `to` and block it on `away`, batch by batch: each batch allows
        its share of `to`, then blocks the matching share of `away`. Alarms are evaluated
        before each batch."""
        size = self._batch_size(len(to))
        moved_to, moved_away = 0, 0
        index = 0
        while moved_to < len(to) or moved_away < len(away):
            if await self._alarm_stop():
                return False
            allow = tuple(to[moved_to : moved_to + size])
            moved_to += len(allow)
            upto = len(away) if moved_to >= len(to) else (len(away) * moved_to) // len(to)
            block = tuple(away[moved_away:upto])
            moved_away = upto
            index += 1
            self.publish(ev.BatchStarted(self.id, self.now(), index + 1, (*allow, *block)))
            if allow and not await self._phase(self._traffic(allow, ALLOW_EVENTS)):
                return False
            if block and not await self._phase(self._traffic(block, BLOCK_EVENTS)):
                return False
        return True

    def _batch_size(self, count: int) -> int:
        if count == 0 or self.config.one_at_a_time:
            return 1
        return max(1, count - minimum_healthy(self.config, count))

    async def _alarm_stop(self) -> bool:
        if self.alarms is None:
            return self.stop_request is not None
        stop = await self.alarms.check()
        if stop is not None:
            self.request_stop(stop)
        return self.stop_request is not None

    async def _traffic(self, names: Sequence[str], events: tuple[str, ...]) -> bool:
        """One batch's traffic events on `names`. Blue starts here (green started with its
        install); in a rollback, an instance is done once its traffic moved."""
        for name in names:
            if events == BLOCK_EVENTS or self.rolling_back:
                self._started(name)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._instance_events(n, events)) for n in names]
        results = [t.result() for t in tasks]
        for name, ok in zip(names, results, strict=True):
            if not ok or self.rolling_back:
                self._done(name, ok)
        return all(results)

    async def _terminate_blue(self) -> bool:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._instance_events(n, ("ApplicationStop",))) for n in self.blue
            ]
        results = [t.result() for t in tasks]
        for name, ok in zip(self.blue, results, strict=True):
            self._done(name, ok)
            if ok and name in self.membership.copies():
                instance = next(i for i in self.fleets.blue if i.name == name)
                remove_copy(instance)
                self.note(
                    f"copied instance {name} terminated: its folder was removed", instance=name
                )
        if all(results):
            self.note(f"TERMINATE: {', '.join(self.blue)} stopped and left the group")
        return all(results)

    # ---- one instance -------------------------------------------------------------------

    def _started(self, name: str) -> None:
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), name, IN_PROGRESS))
        self.fire_instance("InstanceStart", name)

    def _done(self, name: str, succeeded: bool) -> None:
        self.publish(
            ev.InstanceStatusChanged(self.id, self.now(), name, SUCCEEDED if succeeded else FAILED)
        )
        self.fire_instance("InstanceSuccess" if succeeded else "InstanceFailure", name)

    async def _instance_events(self, name: str, events: Sequence[str]) -> bool:
        """Run `events` on one instance in order; False at the first failure (the rest
        Skipped). A stop ends the running one (Failed) and skips the rest."""
        target = self.targets[name]
        remaining = list(events)
        try:
            async with target.session():
                while remaining:
                    event = remaining.pop(0)
                    result = await self._run_event(target, event)
                    if result.ok or self._failure_ignored(event, name):
                        continue
                    self._skip_events(name, remaining)
                    return False
        except asyncio.CancelledError:
            self._skip_events(name, remaining)
            self._done(name, False)
            raise
        return True
