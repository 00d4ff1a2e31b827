"""The ECS run strategy: a service's replacement task set (Green) of the revision's task
definition starts beside the original (Blue), gets the test listener, then production traffic
by the config's schedule (engine/deployments/shift.py), and after the termination wait the
original drains and stops. Target groups alternate between deployments.

Lifecycle: BeforeInstall, Install (the replacement starts and passes its health checks),
AfterInstall, AllowTestTraffic (the test listener sends everything to the replacement),
AfterAllowTestTraffic, BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic; hooks are
functions invoked as for Lambda. A failure, a stop or an alarm routes production and test
traffic back to the original at once and removes the replacement.

The service runs in a host process of its own (engine/services/host.py) that outlives the
run: the run starts it unless it runs (a new host starts again the task set the previous
deployment left primary) and leaves it running, so the service answers between deployments.
A host that goes away mid-deployment fails the run, and a new host serves the original again.
A service's first deployment has no original: its task set becomes the primary and takes all
traffic at once. A rollback to the revision the original task set runs only routes traffic
back to it and removes the replacement.
See https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-steps-ecs.html
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from engine import events as ev
from engine.appspec.ecs_appspec import EcsAppSpec
from engine.configs.traffic import TrafficStep, traffic_schedule
from engine.deployments.hooked_run import HOOK_TIMEOUT_KEY, HookedRun, RunFailed, RunStopped
from engine.deployments.run import RunContext
from engine.deployments.shift import TrafficShift
from engine.deployments.traffic_gauge import ServiceGauge
from engine.hosting.daemon import HostStartError
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
from engine.services import (
    Service,
    ServiceError,
    StartPolicy,
    TaskDefinition,
    TaskDefinitions,
    TaskSetStartError,
    TaskSetStatus,
    services_dir,
)
from engine.services.client import HostLost, ServiceClient
from engine.traffic.model import HealthCheck, TrafficSettings

LIFECYCLE = (
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
)
HOOKED = frozenset(
    {
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    }
)
# The keys of an ECS group's target: (what it is, an example for the error).
TARGET_KEYS = {
    "service": "the service's name",
    "production_port": "the production listener's port (0: a free one)",
    "test_port": "the test listener's port (optional)",
    "termination_wait_minutes": "minutes the original task set is kept after the shift",
    "health_check": "the listeners' health checks of each task",
    "deregistration_delay_seconds": "how long a task set's open requests may take to drain",
    "start_timeout_seconds": "how long a new task has to pass its first health check",
    HOOK_TIMEOUT_KEY: "how long a hook has to report",
    "time_scale": "the scale deployments run at unless one is asked for (engine/api.py)",
}
T = TypeVar("T")
HEALTH_KEYS = ("interval_seconds", "timeout_seconds", "healthy_threshold", "unhealthy_threshold")
WATCH_SECONDS = 0.1  # how often task counts are looked at while task sets start or drain
HOST_CHECK_SECONDS = 1.0  # how often a run makes sure its service's host is still there


def start_ecs(context: RunContext) -> EcsRun:
    return EcsRun(context)


@dataclass(frozen=True)
class ServiceSettings:
    """An ECS group's target, checked."""

    service: Service
    termination_wait_minutes: float
    traffic: TrafficSettings
    policy: StartPolicy


class EcsRun(HookedRun):
    """One ECS deployment run (a DeploymentRun)."""

    platform = ComputePlatform.ECS
    invalid_code = "INVALID_ECS_SERVICE"
    lifecycle = LIFECYCLE

    def __init__(self, context: RunContext) -> None:
        super().__init__(context)
        self.host: ServiceClient | None = None  # the service's host, once it answers
        self._settings_used: tuple[Service, TrafficSettings, StartPolicy] | None = None
        self._lost: HostLost | None = None  # the host went away mid-deployment
        self._host_check: asyncio.Task[None] | None = None
        self.first = False  # the service's first deployment: no original task set
        # a rollback whose original task set runs the revision rolled back to: traffic goes
        # back to it and no replacement starts
        self.reroute = False
        self._shown: tuple | None = None  # the task sets as last journaled

    async def run(self, *, resume: bool = False) -> DeploymentInfo:
        spec: EcsAppSpec = self.appspec()
        settings: ServiceSettings | None = None
        event = LIFECYCLE[0]
        try:
            settings = self._settings()
            self.target_name = settings.service.name
            if resume:
                event = self.interrupted_event()
            else:
                self._begin(settings.service.name)
            definition = self._definition(spec)
            await self._start_service(settings, definition, resume)
            if resume:
                raise RunFailed(
                    "INTERNAL_ERROR",
                    "its engine process was interrupted mid-deployment; the service's "
                    "replacement task set was removed and the original serves again: deploy again",
                )
            await self.start_gateway()
            for event in LIFECYCLE:
                await self._event(event, spec, definition)
            await self._terminate_original(settings)
        except RunStopped:
            if self._lost is not None:
                return await self._fail(event, RunFailed("ECS_UPDATE_ERROR", ""))
            await self._put_back()
            self.finish_target(event, FAILED, None)
            code, message = self.stopped_code()
            return self.finish(
                STOPPED, code, message or "The deployment was stopped: traffic is back"
            )
        except RunFailed as failure:
            if settings is None:  # the target is unusable: nothing was started
                self._begin(self.deployment.deployment_group)
            return await self._fail(event, failure)
        except HostLost as error:
            self._lost = error
            return await self._fail(event, RunFailed("ECS_UPDATE_ERROR", ""))
        except ServiceError as error:
            return await self._fail(event, RunFailed("ECS_UPDATE_ERROR", str(error)))
        self.publish(
            ev.InstanceRevisionChanged(self.id, self.now(), self.target_name, self.revision)
        )
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), self.target_name, SUCCEEDED))
        return self.finish(SUCCEEDED, None, "")

    async def _fail(self, event: str, failure: RunFailed) -> DeploymentInfo:
        restarted = await self._put_back()
        message = failure.message
        if self._lost is not None:  # whatever failed, the host's loss is why
            again = (
                "a new host serves the original task set again"
                if restarted
                else "its next deployment starts a new one"
            )
            message = f"{self._lost}. The deployment cannot go on without it; {again}"
        self.finish_target(event, FAILED, Diagnostics(failure.code, None, message))
        return self.finish(FAILED, failure.code, message)

    def _begin(self, name: str) -> None:
        self.target_name = name
        self.publish(
            ev.InstancesTargeted(self.id, self.now(), (name,), (f"ecs:{name}",), LIFECYCLE, 0)
        )
        self.publish(ev.DeploymentStatusChanged(self.id, self.now(), IN_PROGRESS))
        self.publish(ev.InstanceStatusChanged(self.id, self.now(), name, IN_PROGRESS))

    async def close(self) -> None:
        """The service's host goes on running: its tasks serve until the next deployment."""
        check, self._host_check = self._host_check, None
        if check is not None:
            check.cancel()
            await asyncio.gather(check, return_exceptions=True)
        await super().close()

    # ---- settings -----------------------------------------------------------------------

    def _settings(self) -> ServiceSettings:
        target = self.target_settings()
        for key in target:
            if key not in TARGET_KEYS:
                raise self.bad_setting(
                    key,
                    target[key],
                    f"it is not a setting of an ECS target ({', '.join(TARGET_KEYS)})",
                )
        name = target.get("service")
        if not isinstance(name, str) or not name:
            raise self.bad_setting("service", name, "write service: NAME (the service to deploy)")
        try:
            service = Service(
                name,
                production_port=self._port(target, "production_port", 0) or 0,
                test_port=self._port(target, "test_port", None),
            )
        except ValueError as error:
            raise RunFailed(self.invalid_code, f"deployment group target: {error}") from None
        wait = target.get("termination_wait_minutes", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 2880:
            raise self.bad_setting(
                "termination_wait_minutes", wait, "write minutes from 0 to 2880 (default 0)"
            )
        health = target.get("health_check", {})
        if not isinstance(health, dict) or any(k not in HEALTH_KEYS for k in health):
            raise self.bad_setting(
                "health_check", health, f"write a mapping of {', '.join(HEALTH_KEYS)}"
            )
        start_timeout = self._seconds(target, "start_timeout_seconds", 300.0)
        delay = self._seconds(target, "deregistration_delay_seconds", 30.0)
        try:
            check = HealthCheck(
                **{
                    "interval_seconds": 2.0,
                    "timeout_seconds": 2.0,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 2,
                    **health,
                }
            )
        except (TypeError, ValueError) as error:
            raise self.bad_setting("health_check", health, str(error)) from None
        traffic = TrafficSettings(
            health_check=check,
            deregistration_delay_seconds=delay,
            allow_timeout_seconds=start_timeout,
        )
        policy = StartPolicy(timeout=start_timeout)
        return ServiceSettings(service, float(wait), traffic, policy)

    def _seconds(self, target: dict[str, Any], key: str, default: float) -> float:
        value = target.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.bad_setting(key, value, f"write a positive number of seconds ({default:g})")
        return float(value)

    def _port(self, target: dict[str, Any], key: str, default: int | None) -> int | None:
        value = target.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
            raise self.bad_setting(key, value, "write a port number from 0 to 65535")
        return value

    def _definition(self, spec: EcsAppSpec) -> TaskDefinition:
        """The revision's task definition (`family:revision`, an ARN ending in it, or a family
        for its latest revision), registered under the state folder."""
        written = spec.resource.task_definition
        family, _, number = written.rsplit("/", 1)[-1].partition(":")
        if number and not number.isdigit():
            raise RunFailed(
                "INVALID_REVISION",
                f"TaskDefinition {written!r}: write family:revision, e.g. web:3",
            )
        try:
            definition = TaskDefinitions(services_dir(self.context.workspace.state_dir)).get(
                family, int(number) if number else None
            )
        except ServiceError as error:
            raise RunFailed(
                "INVALID_REVISION",
                f"TaskDefinition {written}: {error}; register it with `deploydeck "
                "register-task-definition`",
            ) from None
        if definition.container_port != spec.resource.container_port:
            raise RunFailed(
                "INVALID_REVISION",
                f"LoadBalancerInfo ContainerPort {spec.resource.container_port} is not task "
                f"definition {definition.arn}'s container port {definition.container_port}",
            )
        return definition

    # ---- the service --------------------------------------------------------------------

    async def _start_service(
        self, settings: ServiceSettings, definition: TaskDefinition, resume: bool
    ) -> None:
        """Reach the service's host (started unless it runs) and the task set it serves."""
        state_dir = services_dir(self.context.workspace.state_dir) / settings.service.name
        # the listeners check the path the new task definition names
        check = replace(settings.traffic.health_check, path=definition.health_check_path)
        traffic = replace(settings.traffic, health_check=check)
        self._settings_used = (settings.service, traffic, settings.policy)
        host = ServiceClient(state_dir, settings.service.name)
        try:
            await host.ensure(settings.service, traffic, settings.policy)
        except (ServiceError, HostStartError) as error:
            raise RunFailed(
                "ECS_UPDATE_ERROR", f"service {settings.service.name}: {error}"
            ) from None
        self.host = host
        self._host_check = asyncio.ensure_future(self._check_host())
        try:
            task_sets = await self._watch(host.restore())
        except HostLost:
            raise
        except ServiceError as error:
            raise RunFailed("ECS_UPDATE_ERROR", str(error)) from None
        primary = next((t for t in task_sets if t.status == TaskSetStatus.PRIMARY), None)
        if primary is None:
            self.first = True
            self.note(
                f"service {settings.service.name} has no task set yet: this deployment's task "
                "set becomes its primary and takes all traffic at once"
            )
            return
        self.note(
            f"service {settings.service.name}'s host (pid {host.pid}) serves task set "
            f"{primary.identifier} ({primary.task_definition})"
        )
        left = next((t for t in task_sets if t.status == TaskSetStatus.ACTIVE), None)
        if left is not None and not resume:
            # one deployment runs per group at a time: this replacement's run is gone
            self.note(
                f"task set {left.identifier} ({left.task_definition}) of an interrupted "
                "deployment is still there: traffic goes back to the original and it is removed"
            )
            await self._watch(host.rollback(), stoppable=False)
        if (
            self.deployment.creator == CREATOR_ROLLBACK
            and primary.task_definition == definition.arn
        ):
            self.reroute = True
            self.note(
                f"the original task set ({primary.task_definition}) runs the revision rolled "
                "back to: production and test traffic go back to it, the replacement (if any) "
                "is removed, and no new task set starts"
            )

    async def _check_host(self) -> None:
        """Stop the run (as a failure) once the service's host is gone."""
        host = self.host
        assert host is not None
        while True:
            await asyncio.sleep(HOST_CHECK_SECONDS)
            try:
                await host.describe()
            except HostLost as error:
                self._lost = error
                self._stopped.set()
                return
            except ServiceError:
                continue

    async def _show(self) -> None:
        """Journal the service's task sets as they are now, unless that is what was last
        journaled (nothing when the host cannot tell)."""
        service = self.host
        if service is None:
            return
        try:
            task_sets = await service.task_sets()
        except ServiceError:
            return
        host, port = service.production_address
        test = service.test_address
        views = tuple(
            ev.TaskSetView(
                t.identifier,
                str(t.label),
                str(t.status),
                t.task_definition,
                t.target_group,
                t.desired_count,
                t.pending_count,
                t.running_count,
                t.traffic_weight,
                t.test_traffic_weight,
            )
            for t in task_sets
        )
        shown = (f"{host}:{port}", f"{test[0]}:{test[1]}" if test else None, views)
        if shown == self._shown or (not views and self._shown is None):
            return  # unchanged, or a service with no task set yet: nothing to show
        self._shown = shown
        self.publish(ev.TaskSetsChanged(self.id, self.now(), self.target_name, *shown))

    async def _watch(self, awaitable: Awaitable[T], stoppable: bool = True) -> T:
        """`awaitable` (ended by a stop when `stoppable`), journaling the task sets whenever
        their counts or states change meanwhile: tasks are seen starting, becoming healthy and
        draining."""

        async def follow() -> None:
            while True:
                await self._show()
                await asyncio.sleep(WATCH_SECONDS)

        follower = asyncio.ensure_future(follow())
        try:
            return await (self.or_stop(awaitable) if stoppable else awaitable)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await self._show()

    # ---- lifecycle events ---------------------------------------------------------------

    async def _event(self, event: str, spec: EcsAppSpec, definition: TaskDefinition) -> None:
        if self._stopped.is_set():
            raise RunStopped
        self.publish(ev.LifecycleEventStarted(self.id, self.now(), self.target_name, event))
        note = ""
        if self.reroute:
            note = await self._reroute(event)
        elif event in HOOKED:
            hook = spec.hook_function(event)
            skip = None
            if event == "AfterAllowTestTraffic" and self._no_test_listener():
                skip = "no test listener: the hook is ignored"
            if hook is None or skip is not None:
                self.publish(
                    ev.LifecycleEventFinished(
                        self.id,
                        self.now(),
                        self.target_name,
                        event,
                        "Skipped",
                        note=skip or "no hook",
                    )
                )
                return
            await self.hook(event, hook)
            note = f"hook {hook} reported Succeeded"
        elif event == "Install":
            note = await self._install(definition)
        elif event == "AllowTestTraffic":
            note = await self._allow_test_traffic()
        elif event == "AllowTraffic":
            note = await self._allow_traffic()
        status = "Skipped" if self.reroute and event in HOOKED else SUCCEEDED
        self.publish(
            ev.LifecycleEventFinished(
                self.id, self.now(), self.target_name, event, status, note=note
            )
        )

    async def _reroute(self, event: str) -> str:
        """A rollback's event when the original task set still runs: no hook runs (there is
        no replacement to check) and AllowTraffic sends production and test traffic back to
        the original, removing any replacement left."""
        runtime = self.host
        assert runtime is not None
        if event in HOOKED:
            return "a rollback to the running original task set runs no hooks"
        if event == "Install":
            return "the original task set runs the revision rolled back to: none started"
        if event == "AllowTestTraffic":
            return "the test listener goes back to the original with production traffic"
        if event == "AllowTraffic":
            await self.alarm_check()
            removed = await self._watch(runtime.rollback(), stoppable=False)
            if removed:
                return "all traffic is back on the original; the replacement is removed"
            return "production and test traffic are on the original"
        return ""

    def _no_test_listener(self) -> bool:
        return self.host is not None and self.host.test_address is None

    async def _install(self, definition: TaskDefinition) -> str:
        runtime = self.host
        assert runtime is not None
        try:
            if self.first:
                info = await self._watch(runtime.create_primary(definition))
            else:
                info = await self._watch(runtime.create_replacement(definition))
        except TaskSetStartError as error:
            raise RunFailed(
                "ECS_UPDATE_ERROR",
                f"the replacement task set of {definition.arn} did not become healthy: {error}",
            ) from None
        except HostLost:
            raise
        except ServiceError as error:
            raise RunFailed("ECS_UPDATE_ERROR", str(error)) from None
        finally:
            await self._show()
        return f"task set {info.identifier} ({definition.arn}): {info.running_count} running"

    async def _allow_test_traffic(self) -> str:
        runtime = self.host
        assert runtime is not None
        if self.first:
            return "the service's first task set already takes all test traffic"
        if not await runtime.route_test_traffic():
            return "no test listener"
        await self._show()
        host, port = runtime.test_address or ("", 0)
        return f"the test listener {host}:{port} serves the replacement"

    def schedule(self) -> list[TrafficStep]:
        routing = self.context.config.traffic_routing
        if routing is None or self.deployment.creator == CREATOR_ROLLBACK:
            return [TrafficStep(0, 100)]  # a rollback moves all traffic back at once
        return traffic_schedule(routing)

    async def _allow_traffic(self) -> str:
        runtime = self.host
        assert runtime is not None
        if self.first:
            return "the service's first task set already takes all traffic"

        async def route(weight: float) -> None:
            await self.alarm_check()
            await runtime.shift_traffic(round(weight * 100))
            await self._show()

        shift = TrafficShift(self.id, self.store, self.clock, self.schedule(), route)
        replacement = next(
            (t.target_group for t in await runtime.task_sets() if t.status == "ACTIVE"), None
        )
        if replacement is None:  # nothing to measure against: shift without a gauge
            await self.or_stop(shift.run())
        else:
            gauge = ServiceGauge(
                self.id,
                self.store,
                self.now,
                runtime,
                self.target_name,
                replacement,
                shift.schedule,
            )
            async with gauge:
                await self.or_stop(shift.run())
        return "production traffic is on the replacement"

    async def _terminate_original(self, settings: ServiceSettings) -> None:
        runtime = self.host
        assert runtime is not None
        if self.first or self.reroute:
            return
        if settings.termination_wait_minutes:
            self.note(
                f"the original task set ends after the termination wait of "
                f"{settings.termination_wait_minutes:g} min; a stop until then routes traffic back"
            )
            await self.or_stop(self.clock.sleep(settings.termination_wait_minutes * 60))
        await self._watch(runtime.complete(), stoppable=False)

    async def _put_back(self) -> bool:
        """Production, then test traffic back on the original at once; the replacement is
        drained and removed. A host that is gone is started again: it serves the original
        (the primary its state names). True when a new host was started."""
        host = self.host
        if host is None or self.first:
            return False
        try:
            if self._lost is None:
                if not any(t.status == TaskSetStatus.ACTIVE for t in await host.task_sets()):
                    return False  # the replacement never started (or already took over)
                await host.shift_traffic(0)
                await self._show()
                await self._watch(host.rollback(), stoppable=False)
                return False
        except HostLost as error:
            self._lost = error
        except ServiceError as error:
            self.note(f"traffic could not be put back: {error}", "error")
            return False
        assert self._settings_used is not None
        try:
            await host.ensure(*self._settings_used)
            await self._watch(host.restore(), stoppable=False)
        except (ServiceError, HostStartError) as error:
            self.note(f"the service's host could not start again: {error}", "error")
            return False
        return True
