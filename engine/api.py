"""The engine's facade: the few commands a console or CLI calls, and the events it watches.

Commands: create a deployment, stop it (with or without rollback), continue a blue/green one
past its wait, resume one whose engine died, roll back, hold/resume/skip/promote a traffic
shift, register a revision. Each deployment
runs in its own runner process (or, for tests and benchmarks, a task of this process);
everything it does arrives as journal entries, which `events()` yields in order. Reads (get,
list) come straight from the store.
"""

from __future__ import annotations

import contextlib
import copy
import shlex
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from engine import events as ev
from engine.appspec.diagnostics import Diagnostic
from engine.clock import Clock, RealClock
from engine.configs import PREDEFINED_CONFIGS, DeploymentConfig, DeploymentPlan, plan_deployment
from engine.configs.traffic import traffic_schedule
from engine.deployments.ordering import ordered_targets
from engine.deployments.platforms import unsupported_reason
from engine.deployments.revisions import (
    CheckedRevision,
    RevisionInvalid,
    RevisionSnapshots,
    check_revision,
)
from engine.model import (
    CREATED,
    CREATOR_ROLLBACK,
    CREATOR_USER,
    FAILED,
    STOPPED,
    SUCCEEDED,
    AutoRollback,
    ComputePlatform,
    DeploymentInfo,
    DeploymentOptions,
    DeploymentType,
    RevisionRef,
    RollbackInfo,
    WaitType,
    new_deployment_id,
)
from engine.private_files import private_file, private_folder
from engine.store import DeploymentNotFound, InstanceState, RegisteredRevision, Store, StoreError
from engine.workspace import DeploymentGroup, Workspace

if TYPE_CHECKING:
    import asyncio
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from engine.deployments.runner_slot import ForkedRunner, RunnerSlot
    from engine.traffic.hosted import HostStatus

T = TypeVar("T")  # what a read_in_thread call returns
RunMode = Literal["process", "inline"]
ENDED = frozenset({SUCCEEDED, FAILED, STOPPED})
EVENT_POLL_SECONDS = 0.05
# a journal that just grew is read again sooner: the entries after it (a deployment's last
# ones, say) are seen within this, not a whole idle poll later
BUSY_POLL_SECONDS = 0.01
JOURNAL_ALL = 10_000_000  # a read "of everything": far above any deployment's journal


class EngineError(Exception):
    """A command was refused; the message says why and what to do. Nothing changed."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


MAX_DESCRIPTION = 256  # CodeDeploy's limit for a deployment's or a revision's description
GROUP_TIME_SCALE = (
    "time_scale"  # a Lambda or ECS group's target key: its deployments' default scale
)


def check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        raise EngineError(
            f"the description has {len(description)} characters; at most {MAX_DESCRIPTION} "
            "are allowed (as in CodeDeploy): shorten it"
        )


@dataclass(frozen=True)
class CreateDeploymentRequest:
    """CreateDeployment's inputs: a revision by path or by a registered sha256 (prefix)."""

    application: str
    deployment_group: str
    revision_path: Path | None = None
    bundle_type: str | None = None
    registered_sha256: str | None = None
    config_name: str | None = None
    description: str = ""
    file_exists_behavior: str | None = None
    ignore_application_stop_failures: bool | None = None
    update_outdated_instances_only: bool = False
    auto_rollback: AutoRollback | None = None
    # CodeDeploy's overrideAlarmConfiguration: enabled False ignores the group's alarms for
    # this deployment; ignore_poll_alarm_failure True goes on when an alarm cannot be read.
    alarms_enabled: bool | None = None
    ignore_poll_alarm_failure: bool | None = None
    time_scale: float = 1.0  # waits and intervals run this many times faster


@dataclass(frozen=True)
class PlanPreview:
    """What a deployment would do, before anything runs."""

    deployment_group: DeploymentGroup
    plan: DeploymentPlan
    revision: RevisionRef
    warnings: tuple[Diagnostic, ...]
    options: DeploymentOptions
    previous_revision: RevisionRef | None
    hosts: dict[str, str]


@dataclass(frozen=True)
class ShiftPreview:
    """What a Lambda or ECS deployment would do, before anything runs: its weight schedule
    (seconds after the shift starts, percent on the target) at the run's time scale."""

    deployment_group: DeploymentGroup
    config_name: str
    revision: RevisionRef
    warnings: tuple[Diagnostic, ...]
    options: DeploymentOptions
    previous_revision: RevisionRef | None
    steps: tuple[tuple[int, int], ...]


class Engine:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Clock | None = None,
        run_mode: RunMode = "process",
        speed: float = 1.0,
        workspace_argument: str | None = None,
        runner_slot: RunnerSlot | None = None,
    ) -> None:
        self.workspace = workspace
        # the --workspace a user gave, repeated in the commands we suggest to them
        self.workspace_argument = workspace_argument
        self.clock = clock or RealClock()
        self.run_mode = run_mode
        self.speed = speed
        self._store = Store(workspace.state_dir / "state.db")  # consoles read through methods
        self.snapshots = RevisionSnapshots(workspace.state_dir)
        self._inline: dict[str, asyncio.Task[DeploymentInfo]] = {}
        self._runners: dict[str, subprocess.Popen[bytes] | ForkedRunner] = {}  # ours
        self._reading: ThreadPoolExecutor | None = None  # read_in_thread's one thread
        self._reader: Engine | None = None  # this facade on that thread's own connection
        # a child forked before the engine was imported, to run the first deployment started
        self._runner_slot = runner_slot

    async def aclose(self) -> None:
        """Wait for inline deployments (process-mode runners carry on without us)."""
        import asyncio

        if self._inline:
            await asyncio.gather(*self._inline.values(), return_exceptions=True)
        self.close()

    # ---- revisions ----------------------------------------------------------------------

    def check(
        self,
        path: Path,
        bundle_type: str | None = None,
        platform: ComputePlatform = ComputePlatform.SERVER,
    ) -> CheckedRevision:
        """The revision at `path`, with its appspec checked for `platform`; records nothing."""
        try:
            return check_revision(
                path, bundle_type, self.workspace.settings.max_bundle_bytes, platform
            )
        except RevisionInvalid as error:
            raise EngineError(str(error), error.diagnostics) from None

    def register_revision(
        self, application: str, path: Path, bundle_type: str | None = None, description: str = ""
    ) -> RevisionRef:
        check_description(description)
        platform = self.workspace.application(application).compute_platform
        checked = self.check(path, bundle_type, platform)
        self.snapshots.keep(checked)
        self._store.register_revision(application, checked.ref, description)
        return checked.ref

    def list_revisions(self, application: str | None = None) -> list[RegisteredRevision]:
        return self._store.list_revisions(application)

    def _resolve_revision(
        self,
        request: CreateDeploymentRequest,
        group: DeploymentGroup,
        *,
        checked: CheckedRevision | None = None,
        verify_snapshot: bool = True,
    ) -> tuple[RevisionRef, tuple[Diagnostic, ...]]:
        """The request's revision, registered; `checked` (already read and kept) and
        `verify_snapshot=False` leave the slow file work to a caller that does it apart."""
        if (request.revision_path is None) == (request.registered_sha256 is None):
            raise EngineError(
                "Give the revision as a path or as a registered revision's sha256, not both"
            )
        if request.revision_path is not None:
            if checked is None:
                checked = self._check_and_keep(request, group)
            if not self._store.find_revision(request.application, checked.ref.sha256):
                self._store.register_revision(request.application, checked.ref, "")
            return checked.ref, checked.warnings
        prefix = request.registered_sha256 or ""
        found = self._store.find_revision(request.application, prefix)
        if len(found) != 1:
            what = "no registered revision" if not found else f"{len(found)} registered revisions"
            raise EngineError(
                f"{what} of {request.application} starts with {prefix!r}; see "
                "`deploydeck list-revisions`"
            )
        ref = found[0].revision
        if verify_snapshot:
            self._verify_snapshot(ref, group)
        return ref, ()

    def _check_and_keep(
        self, request: CreateDeploymentRequest, group: DeploymentGroup
    ) -> CheckedRevision:
        """Read, check and hash the revision at the request's path, and keep a snapshot."""
        assert request.revision_path is not None
        checked = self.check(request.revision_path, request.bundle_type, group.compute_platform)
        self.snapshots.keep(checked)
        return checked

    def _verify_snapshot(self, ref: RevisionRef, group: DeploymentGroup) -> None:
        """The registered revision's snapshot is there and unchanged (it is hashed again)."""
        try:
            self.snapshots.payload(ref, group.compute_platform)
        except RevisionInvalid as error:
            raise EngineError(str(error), error.diagnostics) from None

    async def _resolve_revision_in_thread(
        self, request: CreateDeploymentRequest, group: DeploymentGroup
    ) -> RevisionRef:
        """`_resolve_revision` with the reading, hashing and copying in a thread: an event loop
        that also draws (the console) stays free; the store is used on this thread only."""
        import asyncio

        checked = None
        if request.revision_path is not None and request.registered_sha256 is None:
            checked = await asyncio.to_thread(self._check_and_keep, request, group)
        ref, _ = self._resolve_revision(request, group, checked=checked, verify_snapshot=False)
        if checked is None:
            await asyncio.to_thread(self._verify_snapshot, ref, group)
        return ref

    # ---- deployments --------------------------------------------------------------------

    def preview(self, request: CreateDeploymentRequest) -> PlanPreview:
        """Check everything a create would check and plan the batches; records nothing."""
        group = self._group(request)
        self._supported(group)
        config = self._config(request, group)
        if config.traffic_routing is not None:  # Lambda: no batches to show
            raise EngineError(_no_batches(config))
        if request.revision_path is not None:
            checked = self.check(request.revision_path, request.bundle_type, group.compute_platform)
            revision, warnings = checked.ref, checked.warnings
        else:
            revision, warnings = self._resolve_revision(request, group)
        options = self._options(request, group)
        order = ordered_targets(
            self._store,
            self.workspace,
            request.application,
            request.deployment_group,
            revision.sha256,
            outdated_only=options.update_outdated_instances_only,
        )
        hosts = {n: _host(self.workspace, n) for n in order}
        return PlanPreview(
            group,
            plan_deployment(config, order),
            revision,
            warnings,
            options,
            self._store.last_successful_revision(request.application, request.deployment_group),
            hosts,
        )

    def preview_shift(self, request: CreateDeploymentRequest) -> ShiftPreview:
        """`preview` for a traffic-shifting group (Lambda, ECS): the revision checked and the
        config's weight schedule; records nothing."""
        group = self._group(request)
        self._supported(group)
        config = self._config(request, group)
        if config.traffic_routing is None:
            raise EngineError(f"{config.name} shifts no traffic: use `preview` for its batches")
        if request.revision_path is not None:
            checked = self.check(request.revision_path, request.bundle_type, group.compute_platform)
            revision, warnings = checked.ref, checked.warnings
        else:
            revision, warnings = self._resolve_revision(request, group)
        steps = tuple(
            (s.at_seconds, s.target_percent) for s in traffic_schedule(config.traffic_routing)
        )
        return ShiftPreview(
            group,
            config.name,
            revision,
            warnings,
            self._options(request, group),
            self._store.last_successful_revision(request.application, request.deployment_group),
            steps,
        )

    async def create_deployment(self, request: CreateDeploymentRequest) -> DeploymentInfo:
        group, config, options = self._creatable(request)
        revision = await self._resolve_revision_in_thread(request, group)
        deployment = self._new_deployment(request, group, config, options, revision)
        return await self._record_and_start(deployment)

    def create_deployment_now(self, request: CreateDeploymentRequest) -> DeploymentInfo:
        """`create_deployment` in the calling thread, with no event loop: for a command line,
        whose runner (a process) is handed its deployment before asyncio is even imported."""
        if self.run_mode != "process":
            raise RuntimeError("create_deployment_now starts runner processes only")
        group, config, options = self._creatable(request)
        revision, _ = self._resolve_revision(request, group)
        deployment = self._new_deployment(request, group, config, options, revision)
        return self._record_and_start_now(deployment)

    def _creatable(
        self, request: CreateDeploymentRequest
    ) -> tuple[DeploymentGroup, DeploymentConfig, DeploymentOptions]:
        """The request's group, config and options, once nothing stops a deployment of it."""
        check_description(request.description)
        group = self._group(request)
        self._supported(group)
        config = self._config(request, group)
        options = self._options(request, group)
        active = self._store.active_deployment(request.application, request.deployment_group)
        if active is not None:
            raise EngineError(
                self._active_message(request.application, request.deployment_group, active)
            )
        return group, config, options

    def _new_deployment(
        self,
        request: CreateDeploymentRequest,
        group: DeploymentGroup,
        config: DeploymentConfig,
        options: DeploymentOptions,
        revision: RevisionRef,
    ) -> DeploymentInfo:
        return DeploymentInfo(
            id=new_deployment_id(),
            application=request.application,
            deployment_group=request.deployment_group,
            config_name=config.name,
            status=CREATED,
            revision=revision,
            creator=CREATOR_USER,
            description=request.description,
            previous_revision=self._store.last_successful_revision(
                request.application, request.deployment_group
            ),
            create_time=self.clock.now(),
            options=options,
            compute_platform=group.compute_platform,
            deployment_style=group.deployment_style,
        )

    async def _record_and_start(
        self, deployment: DeploymentInfo, *extra: ev.Event
    ) -> DeploymentInfo:
        return self._record_and_start_now(deployment, *extra)

    def _record_and_start_now(self, deployment: DeploymentInfo, *extra: ev.Event) -> DeploymentInfo:
        from engine.store import DeploymentLimitExceeded

        try:
            self._store.append_many(
                [ev.DeploymentCreated(deployment.id, deployment.create_time, deployment), *extra]
            )
        except DeploymentLimitExceeded as error:
            raise EngineError(
                self._active_message(
                    deployment.application, deployment.deployment_group, error.active_id
                )
            ) from None
        self._start_runner(deployment.id)
        return self._store.get_deployment(deployment.id)

    def _start_runner(self, deployment_id: str, *, resume: bool = False) -> None:
        if self.run_mode == "inline":
            import asyncio

            from engine.deployments.runner import DeploymentRunner

            runner = DeploymentRunner(
                self.workspace, Store(self._store.path, wait_when_locked=True), self.clock
            )
            self._inline[deployment_id] = asyncio.create_task(
                runner.run(deployment_id, resume=resume)
            )
            return
        logs = self.workspace.state_dir / "runs"
        private_file(private_folder(logs) / f"{deployment_id}.log")  # hooks' output: 0600
        argv = [
            sys.executable,
            "-m",
            "engine.deployments.runner",
            "--workspace",
            str(self.workspace.path),
            "--deployment",
            deployment_id,
            "--speed",
            str(self.speed),
        ]
        if resume:
            argv.append("--resume")
        slot, self._runner_slot = self._runner_slot, None
        if slot is not None:
            try:
                pid = slot.start(
                    self.workspace,
                    deployment_id,
                    resume=resume,
                    speed=self.speed,
                    log=logs / f"{deployment_id}.log",
                )
            except OSError:  # the child is gone: a runner is started the usual way
                slot.release()
            else:
                from engine.deployments.runner_slot import ForkedRunner  # the slot's module

                self._runners[deployment_id] = ForkedRunner(pid)
                return
        from engine.deployments.runner import can_fork, fork_runner

        if can_fork() and self._store.sole_connection():
            with self._store.closed():
                self._runners[deployment_id] = fork_runner(
                    self.workspace,
                    deployment_id,
                    resume=resume,
                    speed=self.speed,
                    log=logs / f"{deployment_id}.log",
                )
            return
        import subprocess

        with open(logs / f"{deployment_id}.log", "ab") as log:
            self._runners[deployment_id] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workspace.folder,
            )

    async def stop_deployment(self, deployment_id: str, auto_rollback: bool | None = None) -> str:
        """StopDeployment: "Pending" when a runner is stopping it, "Succeeded" when done here."""
        deployment = self.get_deployment(deployment_id, with_instances=False)  # its status only
        if deployment.terminal:
            raise EngineError(
                f"{deployment_id} already ended ({deployment.status}); nothing to stop"
            )
        if any(o.id == deployment_id for o in self._store.orphans()):
            await self._stop_orphan(deployment, auto_rollback)
            return "Succeeded"
        self._store.append(ev.StopRequested(deployment_id, self.clock.now(), auto_rollback))
        from engine.deployments.wake import wake_runner  # the runner acts on it at once

        wake_runner(self.workspace.state_dir, deployment_id)
        return "Pending"

    async def continue_deployment(
        self, deployment_id: str, wait_type: str = WaitType.READY_WAIT
    ) -> None:
        """ContinueDeployment: end a blue/green deployment's ready wait (start moving traffic
        now) or its termination wait (end blue now). Its runner acts on it within a moment."""
        if wait_type not in tuple(WaitType):
            raise EngineError(
                f"--deployment-wait-type {wait_type!r} is not a wait: use READY_WAIT or "
                "TERMINATION_WAIT (InvalidDeploymentWaitType)"
            )
        deployment = self.get_deployment(deployment_id)
        info = deployment.blue_green
        if deployment.deployment_style.deployment_type != DeploymentType.BLUE_GREEN or (
            deployment.compute_platform != ComputePlatform.SERVER
        ):
            raise EngineError(
                f"{deployment_id} is a {deployment.kind} deployment: only Server blue/green "
                "deployments wait to be continued (UnsupportedActionForDeploymentType)"
            )
        if deployment.terminal:
            raise EngineError(
                f"{deployment_id} already ended ({deployment.status}); there is no wait to "
                "continue (DeploymentAlreadyCompleted)"
            )
        if info is None or info.wait_type != wait_type:
            waiting = (
                f"it is waiting in its {info.wait_type}"
                if info is not None and info.wait_type
                else f"it is {deployment.status}, not waiting"
            )
            raise EngineError(
                f"{deployment_id} is not in its {wait_type}: {waiting}. "
                + (
                    f"Continue that wait: --deployment-wait-type {info.wait_type}"
                    if info is not None and info.wait_type
                    else "Nothing to continue (DeploymentIsNotInReadyState)"
                )
            )
        if deployment.interrupted:
            raise EngineError(self.interrupted_message(deployment))
        self._store.append(ev.ContinueRequested(deployment_id, self.clock.now(), str(wait_type)))

    async def _stop_orphan(self, deployment: DeploymentInfo, auto_rollback: bool | None) -> None:
        from engine.deployments.recovery import end_leftover_scripts, settle_interrupted
        from engine.deployments.runner import start_rollback

        await end_leftover_scripts(
            self._store, deployment.id, self.workspace.settings.kill_grace_seconds
        )
        self._store.append(ev.StopRequested(deployment.id, self.clock.now(), auto_rollback))
        settle_interrupted(
            self._store,
            deployment.id,
            self.clock.now(),
            reason="stopped after its engine process was interrupted",
        )
        final = self.get_deployment(deployment.id)
        due = (
            auto_rollback
            if auto_rollback is not None
            else final.options.auto_rollback.on("DEPLOYMENT_STOP_ON_REQUEST")
        )
        if due:
            rollback = await start_rollback(self._store, self.workspace, self.clock, final)
            if rollback is not None:
                self._start_runner(rollback.id)
        else:
            self._store.append(
                ev.RollbackLinked(
                    deployment.id, self.clock.now(), message="No rollback: stopped without rollback"
                )
            )

    async def resume_deployment(self, deployment_id: str) -> None:
        """Carry on a deployment whose engine process died: its unfinished instances run again."""
        deployment = self.get_deployment(deployment_id)
        if deployment.terminal:
            raise EngineError(
                f"{deployment_id} already ended ({deployment.status}); nothing to resume"
            )
        if not any(o.id == deployment_id for o in self._store.orphans()):
            raise EngineError(f"{deployment_id} is running in another process; nothing to resume")
        if not can_resume(deployment):
            raise EngineError(
                f"{deployment_id} cannot be resumed: it is a blue/green deployment interrupted "
                f"while {deployment.status}, outside its ready and termination waits. "
                + self.recovery_advice(deployment_id)
            )
        from engine.deployments.recovery import end_leftover_scripts

        await end_leftover_scripts(
            self._store, deployment_id, self.workspace.settings.kill_grace_seconds
        )
        self._start_runner(deployment_id, resume=True)

    async def rollback(self, deployment_id: str) -> DeploymentInfo | None:
        """Roll back: a running deployment is stopped and rolled back; a finished one is
        followed by a deployment of the revision the group ran before it."""
        deployment = self.get_deployment(deployment_id)
        if not deployment.terminal:
            await self.stop_deployment(deployment_id, auto_rollback=True)
            return None
        cause = deployment.rollback.rollback_triggering_deployment_id
        if deployment.creator == CREATOR_ROLLBACK and deployment.previous_revision is not None:
            raise EngineError(
                f"{deployment_id} is itself the automatic rollback of {cause}: rolling it back "
                f"would deploy {deployment.previous_revision.short()} again, the revision that "
                "failed. To deploy that revision on purpose, create a deployment of it."
            )
        if deployment.previous_revision is None:
            raise EngineError(
                f"{deployment_id} was the first successful deployment of "
                f"{deployment.deployment_group}: there is no earlier revision to roll back to"
            )
        active = self._store.active_deployment(deployment.application, deployment.deployment_group)
        if active is not None:
            raise EngineError(
                self._active_message(deployment.application, deployment.deployment_group, active)
            )
        now = self.clock.now()
        manual = replace(
            deployment,
            id=new_deployment_id(),
            status=CREATED,
            revision=deployment.previous_revision,
            previous_revision=self._store.last_successful_revision(
                deployment.application, deployment.deployment_group
            ),
            creator=CREATOR_USER,
            description=(
                f"Rollback of {deployment_id} to revision {deployment.previous_revision.short()}"
            ),
            create_time=now,
            start_time=None,
            complete_time=None,
            error_code=None,
            error_message=None,
            rollback=RollbackInfo(rollback_triggering_deployment_id=deployment_id),
            instances=(),
        )
        link = ev.RollbackLinked(
            deployment_id,
            now,
            rollback_deployment_id=manual.id,
            message=f"Rolled back by {manual.id}",
        )
        return await self._record_and_start(manual, link)

    async def control_traffic_shift(
        self, deployment_id: str, action: ev.ShiftAction, *, answer_within: float = 10.0
    ) -> ev.ShiftProgressed | None:
        """Hold, resume, skip the current wait of, or promote a running traffic shift. The
        request is journaled for the deployment's runner, which answers with a ShiftProgressed
        (returned; None when no answer came within `answer_within` s). EngineError, with
        nothing journaled, when the action makes no sense now (not shifting, already held...)
        or the runner answers that it no longer does."""
        import asyncio

        from engine.deployments.shift import shift_refusal

        deployment = self.get_deployment(deployment_id)
        if deployment.terminal:
            raise EngineError(
                f"{deployment_id} already ended ({deployment.status}); it has no traffic shift "
                f"to {action}"
            )
        if any(o.id == deployment_id for o in self._store.orphans()):
            raise EngineError(
                f"{deployment_id}'s engine process is gone, so its traffic shift cannot "
                f"{action}. {self.recovery_advice(deployment_id)}"
            )
        journal = sorted(
            self._store.journal_of_kind(deployment_id, ev.ShiftProgressed.kind)
            + self._store.journal_of_kind(deployment_id, ev.ShiftControlRequested.kind),
            key=lambda entry: entry.seq,
        )
        refusal = shift_refusal(deployment_id, action, journal)
        if refusal is not None:
            raise EngineError(refusal)
        seq = self._store.append(
            ev.ShiftControlRequested(deployment_id, self.clock.now(), str(action))
        )
        deadline = time.monotonic() + answer_within
        ignored = f"{action} of the traffic shift ignored: "
        while time.monotonic() < deadline:
            for entry in self._store.journal(deployment_id, after=seq):
                seq, event = entry.seq, entry.event
                if isinstance(event, ev.ShiftProgressed) and event.action == action:
                    return event
                if isinstance(event, ev.Note) and event.message.startswith(ignored):
                    raise EngineError(f"{deployment_id}: {event.message}")
                if isinstance(event, ev.DeploymentStatusChanged) and event.status in ENDED:
                    return None
            await asyncio.sleep(EVENT_POLL_SECONDS)
        return None

    def task_sets(self, deployment_id: str) -> ev.TaskSetsChanged | None:
        """An ECS deployment's service and its task sets, as last journaled (None: not ECS)."""
        changes = self._store.journal_of_kind(deployment_id, ev.TaskSetsChanged.kind)
        last = changes[-1].event if changes else None
        return last if isinstance(last, ev.TaskSetsChanged) else None

    def traffic_shift(self, deployment_id: str) -> ev.ShiftProgressed | None:
        """Where the deployment's traffic shift stands, as last journaled (None: none ran)."""
        shifts = self._store.journal_of_kind(deployment_id, ev.ShiftProgressed.kind)
        last = shifts[-1].event if shifts else None
        return last if isinstance(last, ev.ShiftProgressed) else None

    def register_task_definition(
        self,
        family: str,
        command: list[str],
        *,
        environment: dict[str, str] | None = None,
        container_port: int = 8080,
        desired_count: int = 1,
        health_check_path: str = "/",
        working_directory: str | None = None,
    ) -> dict[str, Any]:
        """Register the next revision of an ECS task definition family (what ECS deployments
        name in their appspec as family:revision); its JSON form. EngineError when a value
        cannot be used, naming it."""
        from engine.services import ServiceError, TaskDefinitions, services_dir

        definitions = TaskDefinitions(services_dir(self.workspace.state_dir))
        try:
            return definitions.register(
                family,
                command,
                environment=environment,
                container_port=container_port,
                desired_count=desired_count,
                health_check_path=health_check_path,
                working_directory=working_directory,
            ).to_json()
        except (ValueError, ServiceError) as error:
            raise EngineError(f"task definition not registered: {error}") from None

    async def service_status(self, name: str | None = None) -> list[dict[str, Any]]:
        """Each deployed service (or the one named): its host's pid, listeners with their
        weights, and task sets (engine/services/client.py). EngineError for an unknown name."""
        from engine.services import ServiceError, services_dir
        from engine.services.client import service_folders, service_status

        try:
            folders = service_folders(services_dir(self.workspace.state_dir), name)
            return [await service_status(folder) for folder in folders]
        except ServiceError as error:
            raise EngineError(str(error)) from None

    async def stop_service(self, name: str) -> bool:
        """End the service's host and its tasks; False when none ran. EngineError while a
        deployment of the service runs (it would start the host again to put traffic back)."""
        from engine.services import ServiceError, services_dir
        from engine.services.client import service_folders, stop_service

        try:
            (folder,) = service_folders(services_dir(self.workspace.state_dir), name)
        except ServiceError as error:
            raise EngineError(str(error)) from None
        for app in self.workspace.applications.values():
            for group in app.deployment_groups.values():
                running = self._store.active_deployment(app.name, group.name)
                if running and (group.target or {}).get("service") == name:
                    raise EngineError(
                        f"deployment {running} of service {name} is running; stop it first "
                        f"(deploydeck stop-deployment --deployment-id {running})"
                    )
        return await stop_service(folder)

    # ---- reading ------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str, *, with_instances: bool = True) -> DeploymentInfo:
        try:
            return self._mark_interrupted(
                self._store.get_deployment(deployment_id, with_instances=with_instances)
            )
        except DeploymentNotFound as error:
            raise EngineError(str(error)) from None

    def list_deployments(
        self,
        application: str | None = None,
        group: str | None = None,
        statuses=(),
        limit: int | None = None,
    ) -> list[DeploymentInfo]:
        return [
            self._mark_interrupted(d)
            for d in self._store.list_deployments(application, group, statuses, limit)
        ]

    def orphans(self) -> list[DeploymentInfo]:
        return self._store.orphans()

    def runner_gone(self, deployment_id: str) -> bool:
        """Whether the engine process that runs the deployment (and the rollback it starts)
        has ended. A runner this engine started is watched directly; another one through the
        pid it recorded (a runner that never recorded one counts after a grace period)."""
        if deployment_id in self._inline:
            return False
        started = self._runners.get(deployment_id)
        if started is not None and started.poll() is None:
            return False
        if self._store.engine_alive(deployment_id):
            return False
        if started is not None:
            return True
        return self._store.get_deployment(deployment_id, with_instances=False).interrupted

    def _mark_interrupted(self, deployment: DeploymentInfo) -> DeploymentInfo:
        """Marked interrupted at once when the runner this engine started has died before
        recording its pid (the store alone waits out a grace period then)."""
        if deployment.terminal or deployment.interrupted:
            return deployment
        started = self._runners.get(deployment.id)
        if started is None or started.poll() is None:
            return deployment
        if self._store.engine_alive(deployment.id):
            return deployment  # another process carries it on
        when = self._store.last_event_time(deployment.id) or deployment.create_time
        return replace(deployment, interrupted_at=when)

    def recovery_advice(self, deployment_id: str) -> str:
        """The commands that recover an interrupted deployment, as a user would type them."""
        where = f" -w {shlex.quote(self.workspace_argument)}" if self.workspace_argument else ""
        if not can_resume(self._store.get_deployment(deployment_id)):
            # mid-install or mid-reroute: hooks were under way and a traffic batch half done
            return (
                "A blue/green deployment resumes only in its ready or termination wait: stop "
                f"it with `deploydeck stop-deployment{where} --deployment-id {deployment_id}` "
                "(ended Stopped, then rolled back when the group rolls back on "
                "DEPLOYMENT_STOP_ON_REQUEST), or roll it back with `deploydeck rollback"
                f"{where} --deployment-id {deployment_id}` (traffic back on blue, green "
                "blocked, while blue still runs); then deploy again."
            )
        return (
            f"Resume it with `deploydeck resume-deployment{where} --deployment-id "
            f"{deployment_id}`, stop it with `deploydeck stop-deployment{where} --deployment-id "
            f"{deployment_id}`, or roll it back with `deploydeck rollback{where} "
            f"--deployment-id {deployment_id}`."
        )

    def interrupted_message(self, deployment: DeploymentInfo) -> str:
        """One paragraph: what happened to an interrupted deployment and what to do."""
        log = self.workspace.state_dir / "runs" / f"{deployment.id}.log"
        return (
            f"{deployment.id} ({deployment.application}/{deployment.deployment_group}) was "
            f"interrupted while {deployment.status}: its engine process is gone (its log: "
            f"{log}). {self.recovery_advice(deployment.id)}"
        )

    async def events(
        self, deployment_id: str | None = None, *, after: int = 0, follow: bool = True
    ) -> AsyncIterator[ev.JournalEntry]:
        """Journal entries in order; with `follow`, keep waiting for new ones. The reads and
        the decoding run in a thread of their own (one connection, used only there), so the
        event loop that consumes them never waits on the database."""

        def read(store: Store) -> list[ev.JournalEntry]:
            return store.journal(deployment_id, after=after)

        async for entry in self._journal_reads(read, follow):
            after = entry.seq
            yield entry

    async def follow(
        self, deployment_id: str, *, follow: bool = True
    ) -> AsyncIterator[ev.JournalEntry]:
        """One deployment's journal entries from its first, and those of each rollback it
        links, in order; with `follow`, keep waiting for new ones. Each is read through the
        journal's per-deployment index: other deployments' history costs nothing. The reads
        run in the caller's event loop (`--wait` has nothing else for it to do; a database
        in WAL mode never makes a reader wait), sparing a thread's hand-offs per read."""
        cursors = {deployment_id: 0}

        def read(store: Store) -> list[ev.JournalEntry]:
            while True:
                batch = store.journal_of(cursors)
                linked = {
                    entry.event.rollback_deployment_id
                    for entry in batch
                    if isinstance(entry.event, ev.RollbackLinked)
                    and entry.event.rollback_deployment_id
                } - cursors.keys()
                if not linked:
                    return batch
                # a rollback is created just before its link: read again, with it, in order
                cursors.update(dict.fromkeys(linked, 0))

        reads = self._journal_reads(read, follow, in_thread=False, woken_for=deployment_id)
        async with contextlib.aclosing(reads):  # its reader and wake-up line closed with this
            async for entry in reads:
                cursors[entry.event.deployment_id] = entry.seq
                yield entry

    async def _journal_reads(
        self,
        read: Callable[[Store], list[ev.JournalEntry]],
        follow: bool,
        *,
        in_thread: bool = True,
        woken_for: str | None = None,
    ) -> AsyncGenerator[ev.JournalEntry, None]:
        """Batches `read` returns, entry by entry, read with a connection of its own (in a
        thread of its own unless `in_thread` is False); with `follow`, polling until the
        consumer stops (and read at once when the runner of deployment `woken_for` pokes this
        follower's wake-up line: its end is seen without a poll's wait); else until a read
        finds nothing."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        reading = ThreadPoolExecutor(1, thread_name_prefix="journal") if in_thread else None
        loop = asyncio.get_running_loop()

        async def call(work: Callable[..., T], *args: Any) -> T:
            return (
                work(*args) if reading is None else await loop.run_in_executor(reading, work, *args)
            )

        reader = await call(Store, self._store.path)
        wake = None
        if follow and woken_for is not None:
            from engine.deployments.wake import WakeLine, follower_path

            wake = WakeLine(follower_path(self.workspace.state_dir, woken_for))
        try:
            growing = False
            while True:
                batch = await call(read, reader)
                for entry in batch:
                    yield entry
                if not batch:
                    if not follow:
                        return
                    pause = BUSY_POLL_SECONDS if growing else EVENT_POLL_SECONDS
                    await (asyncio.sleep(pause) if wake is None else wake.wait(pause))
                growing = bool(batch)
        finally:
            if wake is not None:
                wake.close()
            if reading is None:
                reader.close()
            else:
                reading.submit(reader.close)
                reading.shutdown(wait=False)

    async def wait(self, deployment_id: str, timeout: float | None = None) -> DeploymentInfo:
        """Until the deployment ends and, if it failed or stopped, its engine has recorded
        whether it rolls back; its final state. If its engine process dies first: the
        deployment as it was left, marked interrupted."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        self.get_deployment(deployment_id)  # a clear error for an unknown id
        while True:
            deployment = self._store.get_deployment(deployment_id, with_instances=False)
            if deployment.terminal and not self._rollback_undecided(deployment):
                return self.get_deployment(deployment_id)
            if self.runner_gone(deployment_id):
                final = self.get_deployment(deployment_id)
                if final.terminal or final.interrupted:
                    return final
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{deployment_id} is still {deployment.status}")
            await asyncio.sleep(EVENT_POLL_SECONDS)

    # ---- reads for consoles: what a console may know of the store, and nothing more ----

    def close(self) -> None:
        """Close the database (a command-line run that started no inline deployment), and
        end the runner slot no deployment took."""
        if self._runner_slot is not None:
            self._runner_slot.release()
            self._runner_slot = None
        if self._reading is not None:
            self._reading.submit(self._close_reader)  # after the reads already asked for
            self._reading.shutdown(wait=False)
            self._reading = None
        self._store.close()

    def journal_position(self) -> int:
        """The newest journal entry's position: a tail from it sees only what follows."""
        return self._store.last_seq()

    def journal(self, deployment_id: str | None = None, after: int = 0) -> list[ev.JournalEntry]:
        """Every journal entry (of one deployment, or all) after position `after`, in order."""
        return self._store.journal(deployment_id, after=after, limit=JOURNAL_ALL)

    async def journal_in_thread(
        self, deployment_id: str | None = None, after: int = 0
    ) -> list[ev.JournalEntry]:
        """`journal`, read and decoded in a thread with its own connection: an event loop
        that draws (the console) stays free while a long journal loads."""
        import asyncio

        def read() -> list[ev.JournalEntry]:
            reader = Store(self._store.path)
            try:
                return reader.journal(deployment_id, after=after, limit=JOURNAL_ALL)
            finally:
                reader.close()

        return await asyncio.to_thread(read)

    async def preview_in_thread(self, request: CreateDeploymentRequest) -> PlanPreview:
        """`preview` in a thread, with a connection of its own: scanning and hashing a large
        revision leave a console's event loop free. A later call does not wait for it."""
        import asyncio

        def run() -> PlanPreview:
            engine = Engine(self.workspace, clock=self.clock, run_mode=self.run_mode)
            try:
                return engine.preview(request)
            finally:
                engine.close()

        return await asyncio.to_thread(run)

    async def preview_shift_in_thread(self, request: CreateDeploymentRequest) -> ShiftPreview:
        """`preview_shift` in a thread, with a connection of its own (as `preview_in_thread`)."""
        import asyncio

        def run() -> ShiftPreview:
            engine = Engine(self.workspace, clock=self.clock, run_mode=self.run_mode)
            try:
                return engine.preview_shift(request)
            finally:
                engine.close()

        return await asyncio.to_thread(run)

    async def check_in_thread(self, path: Path, bundle_type: str | None = None) -> CheckedRevision:
        """`check` in a thread (it reads and hashes the whole revision; it records nothing)."""
        import asyncio

        return await asyncio.to_thread(self.check, path, bundle_type)

    async def read_in_thread(self, read: Callable[[Engine], T]) -> T:
        """`read(engine)`, made of this facade's reads (list_deployments, instance_states,
        orphans...), run in one reading thread on a connection of its own: an event loop that
        draws (the console) never waits on the database. Reads run one at a time, in order."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        if self._reading is None:
            self._reading = ThreadPoolExecutor(1, thread_name_prefix="engine-reads")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reading, self._read_here, read)

    def _read_here(self, read: Callable[[Engine], T]) -> T:
        """In the reading thread: `read` on a copy of this facade with the thread's own
        store (the copy shares the runners this engine started, which mark interruptions)."""
        if self._reader is None:
            reader = copy.copy(self)
            reader._reading = reader._reader = None
            reader._store = Store(self._store.path)
            self._reader = reader
        return read(self._reader)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader._store.close()
            self._reader = None

    def instance_states(self, application: str, group: str) -> dict[str, InstanceState]:
        """What each instance of a group last ran (revision, status, deployment)."""
        return self._store.instance_states(application, group)

    def instance_counts(self, deployment_id: str) -> dict[str, int]:
        """How many of a deployment's instances are in each status."""
        return self._store.instance_counts(deployment_id)

    def connection_states(self, deployment_id: str) -> dict[str, str]:
        """Each SSH instance's last connection state in a deployment (connected, closed...)."""
        states: dict[str, str] = {}
        for entry in self._store.journal_of_kind(deployment_id, ev.InstanceConnection.kind):
            assert isinstance(entry.event, ev.InstanceConnection)
            states[entry.event.instance] = entry.event.state
        return states

    def target_version_weight(self, deployment_id: str) -> float | None:
        """A traffic-shifting deployment's share of traffic on its target, as last set."""
        shifts = self._store.journal_of_kind(deployment_id, ev.TrafficShifted.kind)
        if not shifts:
            return None
        last = shifts[-1].event
        assert isinstance(last, ev.TrafficShifted)
        return last.weight

    def traffic_gauge(self, deployment_id: str) -> ev.TrafficMeasured | None:
        """A traffic-shifting deployment's last gauge: set against actual weight, its step."""
        gauges = self._store.journal_of_kind(deployment_id, ev.TrafficMeasured.kind)
        last = gauges[-1].event if gauges else None
        return last if isinstance(last, ev.TrafficMeasured) else None

    def function_gateway_url(self) -> str | None:
        """The URL of the running gateway that serves this workspace's functions (Lambda's
        Invoke path: `aws lambda invoke --endpoint-url`), None when none runs."""
        from engine.functions import FunctionRegistry

        return FunctionRegistry(self.workspace.state_dir).gateway_url()

    def last_successful_revision(self, application: str, group: str) -> RevisionRef | None:
        return self._store.last_successful_revision(application, group)

    def active_deployment(self, application: str, group: str) -> str | None:
        """The group's unfinished deployment, if any (it may be interrupted: see `orphans`)."""
        return self._store.active_deployment(application, group)

    # ---- load balancers deploydeck runs (each in its group's balancer host) --------------

    def hosted_balancers(self) -> list[tuple[str, str]]:
        """The (application, group) pairs whose load balancer deploydeck runs."""
        from engine.deployments.balancer import hosted_groups

        return hosted_groups(self.workspace)

    async def balancer_status(self, application: str, group: str) -> HostStatus | None:
        """The group's balancer host: pid, listen address, each instance; None if none runs."""
        from engine.deployments.balancer import hosted_balancer_status

        return await self._balancer_call(hosted_balancer_status, application, group)

    async def start_balancer(self, application: str, group: str) -> HostStatus:
        """Start the group's balancer host unless it runs, configured as a deployment would."""
        from engine.deployments.balancer import start_hosted_balancer

        return await self._balancer_call(start_hosted_balancer, application, group)

    async def stop_balancer(self, application: str, group: str) -> bool:
        """End the group's balancer host and what it runs; True when one ran."""
        from engine.deployments.balancer import stop_hosted_balancer

        return await self._balancer_call(stop_hosted_balancer, application, group)

    async def _balancer_call(self, call: Callable[..., Awaitable[T]], app: str, group: str) -> T:
        from engine.deployments.balancer import BalancerConfigError
        from engine.traffic.model import TrafficError
        from engine.workspace import WorkspaceError

        try:
            self.workspace.group(app, group)
            return await call(self.workspace, app, group)
        except (BalancerConfigError, TrafficError, WorkspaceError) as error:
            raise EngineError(str(error)) from None

    def config_names(self, platform: str = "Server") -> list[str]:
        """The deployment configs a group of `platform` may use: predefined and the workspace's."""
        return sorted(
            [n for n, c in PREDEFINED_CONFIGS.items() if c.compute_platform == platform]
            + [n for n, c in self.workspace.configs.items() if c.compute_platform == platform]
        )

    # ---- helpers ------------------------------------------------------------------------

    def _active_message(self, application: str, group: str, active: str) -> str:
        where = f" -w {shlex.quote(self.workspace_argument)}" if self.workspace_argument else ""
        try:
            deployment = self.get_deployment(active)
        except EngineError:
            deployment = None
        if deployment is not None and deployment.interrupted:
            return (
                f"Deployment group {application}/{group} has an interrupted deployment, "
                f"{active}: its engine process is gone, so it will not end by itself. "
                + self.recovery_advice(active)
            )
        return (
            f"Deployment group {application}/{group} already has an active deployment, "
            f"{active}. Wait for it, or stop it: deploydeck stop-deployment{where} "
            f"--deployment-id {active}"
        )

    def _rollback_undecided(self, deployment: DeploymentInfo) -> bool:
        """Ended without success, and its still-running engine has yet to record the rollback
        decision (it fires the end triggers first)."""
        inline = self._inline.get(deployment.id)
        if inline is not None and inline.done():
            return False
        return (
            deployment.status != SUCCEEDED
            and deployment.creator != CREATOR_ROLLBACK
            and not deployment.rollback.rollback_message
            and self._store.engine_alive(deployment.id)
        )

    def _group(self, request: CreateDeploymentRequest) -> DeploymentGroup:
        try:
            return self.workspace.group(request.application, request.deployment_group)
        except Exception as error:
            raise EngineError(str(error)) from None

    def _supported(self, group: DeploymentGroup) -> None:
        """Refuse, before anything is checked or recorded, a group whose kind of deployment
        (platform and style) the engine has no run strategy for."""
        reason = unsupported_reason(group.kind)
        if reason is not None:
            raise EngineError(f"deployment group {group.application}/{group.name}: {reason}")

    def _config(self, request: CreateDeploymentRequest, group: DeploymentGroup):
        try:
            return self.workspace.resolve_config(request.config_name, group)
        except Exception as error:
            raise EngineError(str(error)) from None

    def _options(
        self, request: CreateDeploymentRequest, group: DeploymentGroup
    ) -> DeploymentOptions:
        behavior = (request.file_exists_behavior or group.file_exists_behavior).upper()
        if behavior not in ("DISALLOW", "OVERWRITE", "RETAIN"):
            raise EngineError(
                f"file exists behavior {behavior!r} is not valid; use DISALLOW, OVERWRITE or RETAIN"
            )
        auto = request.auto_rollback or group.auto_rollback
        scale = request.time_scale
        if scale == 1.0 and group.target and GROUP_TIME_SCALE in group.target:
            scale = group.target[GROUP_TIME_SCALE]  # a demo group asks for it in the workspace
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
                raise EngineError(
                    f"deployment group {group.application}/{group.name}: target."
                    f"{GROUP_TIME_SCALE} is {scale!r}; write a positive number "
                    "(20: a minute in 3 s)"
                )
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise EngineError(f"time scale {scale!r}: give a positive number (60: a minute in 1 s)")
        return DeploymentOptions(
            ignore_application_stop_failures=(
                group.ignore_application_stop_failures
                if request.ignore_application_stop_failures is None
                else request.ignore_application_stop_failures
            ),
            file_exists_behavior=behavior,
            update_outdated_instances_only=request.update_outdated_instances_only,
            auto_rollback=auto,
            alarms_enabled=request.alarms_enabled,
            ignore_poll_alarm_failure=request.ignore_poll_alarm_failure,
            time_scale=float(scale),
        )


def _no_batches(config: DeploymentConfig) -> str:
    """Why `plan` has nothing to show for a traffic-shifting config, with its schedule."""
    assert config.traffic_routing is not None
    steps = ", ".join(
        f"{step.target_percent}% at {step.at_seconds // 60} min"
        for step in traffic_schedule(config.traffic_routing)
    )
    return (
        f"{config.name} deploys in no batches: it moves traffic to the target version "
        f"({steps}); create the deployment to run it"
    )


def _host(workspace: Workspace, name: str) -> str:
    instance = workspace.instances[name]
    if instance.ssh is not None:
        ssh = instance.ssh
        return f"{ssh.user + '@' if ssh.user else ''}{ssh.host}:{ssh.port}"
    return f"local:{instance.root}"


__all__ = [
    "Clock",
    "CreateDeploymentRequest",
    "Engine",
    "EngineError",
    "InstanceState",
    "PlanPreview",
    "RealClock",
    "RegisteredRevision",
    "ShiftPreview",
    "StoreError",
    "Workspace",
]


def can_resume(deployment: DeploymentInfo) -> bool:
    """Whether a deployment whose engine process died can be carried on: any but a Server
    blue/green one caught outside its waits (no hook runs in a wait, and which fleet serves
    is recorded; mid-install or mid-reroute it is not)."""
    if not (
        deployment.deployment_style.deployment_type == DeploymentType.BLUE_GREEN
        and deployment.compute_platform == ComputePlatform.SERVER
    ):
        return True
    info = deployment.blue_green
    return (
        info is not None
        and info.wait_type in (WaitType.READY_WAIT, WaitType.TERMINATION_WAIT)
        and deployment.creator != CREATOR_ROLLBACK
    )
