"""The process that runs one deployment (and the rollback it may start) to its end.

`python -m engine.deployments.runner --workspace W --deployment d-X [--resume]`. The engine
spawns one per deployment so a console or CLI can come and go while it runs; they watch the
journal and ask for stops by journaling StopRequested, which the runner reads at once when
the request pokes its wake-up FIFO (engine/deployments/wake.py), else at its next poll.
SIGTERM or SIGINT stop the deployment (without rollback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import NoReturn

from engine import events as ev
from engine.clock import Clock, RealClock, ScaledClock
from engine.configs import DEFAULT_SERVER_CONFIG, BatchScheduler, get_config
from engine.deployments.alarms import DeploymentAlarms
from engine.deployments.fleet import UnknownInstances
from engine.deployments.platforms import NotSupported, strategy_for
from engine.deployments.revisions import RevisionInvalid, RevisionSnapshots
from engine.deployments.run import DeploymentRun, RunContext, StopRequest
from engine.deployments.runner_slot import ForkedRunner, fork_holding_sigint
from engine.deployments.triggers import TriggerDispatcher, deployment_message
from engine.deployments.watchdog import Watchdog
from engine.model import (
    CREATOR_ROLLBACK,
    FAILED,
    IN_PROGRESS,
    ROLLBACK_ON_FAILURE,
    ROLLBACK_ON_STOP,
    SKIPPED,
    STOPPED,
    AutoRollback,
    ComputePlatform,
    DeploymentInfo,
    DeploymentOptions,
    RollbackInfo,
    new_deployment_id,
)
from engine.store import Store, StoreError
from engine.targets.local import ProcessWatch, use_file_workers, use_launcher
from engine.workspace import Workspace, WorkspaceError, load_workspace

STOP_POLL_SECONDS = 0.1


class DeploymentRunner:
    """Runs deployments recorded in the store, one after another (a rollback follows its cause)."""

    def __init__(
        self,
        workspace: Workspace,
        store: Store,
        clock: Clock | None = None,
        watch: ProcessWatch | None = None,
    ) -> None:
        self.workspace = workspace
        self.watch = watch  # told of local hooks' and trigger commands' process groups
        self.store = store
        self.clock = clock or RealClock()
        self.snapshots = RevisionSnapshots(workspace.state_dir)
        self.current: DeploymentRun | None = None
        self._signal_stop: StopRequest | None = None

    def stop_current(self, request: StopRequest) -> None:
        """Stop whatever runs now (a signal); a rollback it would start is not started."""
        self._signal_stop = request
        if self.current is not None:
            self.current.request_stop(request)

    async def run(self, deployment_id: str, *, resume: bool = False) -> DeploymentInfo:
        """Run the deployment; then its rollback, if one is due; returns the first one."""
        final, stop = await self._run_one(deployment_id, resume=resume)
        if self._signal_stop is not None:
            rollback = None
            if final.status != "Succeeded":
                self.store.append(
                    ev.RollbackLinked(
                        final.id,
                        self.clock.now(),
                        message="Stopped by a signal to its engine: no rollback",
                    )
                )
        else:
            rollback = await self.rollback_if_due(final, stop)
        if rollback is not None:
            result, _ = await self._run_one(rollback.id)
            self.store.append(
                ev.RollbackLinked(
                    final.id,
                    self.clock.now(),
                    message=ev.rolled_back(rollback.id, result.status),
                )
            )
        from engine.deployments.wake import wake_followers  # its end is journaled: say so

        wake_followers(self.workspace.state_dir, deployment_id)
        return self.store.get_deployment(deployment_id)

    async def _run_one(
        self, deployment_id: str, *, resume: bool = False
    ) -> tuple[DeploymentInfo, StopRequest | None]:
        deployment = self.store.get_deployment(deployment_id)
        self.store.append(ev.EngineAttached(deployment_id, self.clock.now(), os.getpid(), resume))
        alarms = self._alarms(deployment)
        try:
            run = self._prepare(deployment, resume, alarms)
        except (RevisionInvalid, UnknownInstances, NotSupported, KeyError) as error:
            codes = {RevisionInvalid: "REVISION_MISSING", NotSupported: "NOT_SUPPORTED"}
            code = codes.get(type(error), "NO_INSTANCES")
            self.store.append(
                ev.DeploymentStatusChanged(deployment_id, self.clock.now(), IN_PROGRESS)
            )
            self.store.append(
                ev.DeploymentStatusChanged(
                    deployment_id, self.clock.now(), FAILED, code, str(error)
                )
            )
            return self.store.get_deployment(deployment_id), None
        self.current = run
        watcher = asyncio.create_task(self._watch_stop_requests(run))
        try:
            if self._signal_stop is not None:
                run.request_stop(self._signal_stop)
            if alarms is not None:
                alarms.start(run)
            final = await run.run(resume=resume)
        finally:
            if alarms is not None:
                await alarms.close()
            await run.close()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.current = None
        return final, run.stop_request

    def _alarms(self, deployment: DeploymentInfo) -> DeploymentAlarms | None:
        """The deployment's alarms, when its group has some to evaluate."""
        try:
            group = self.workspace.group(deployment.application, deployment.deployment_group)
        except (KeyError, WorkspaceError):
            return None  # _prepare says why the deployment cannot run
        return DeploymentAlarms.for_deployment(
            self.store,
            self.clock,
            deployment,
            group.alarm_configuration,
            self.workspace.redact,
        )

    def _prepare(
        self, deployment: DeploymentInfo, resume: bool, alarms: DeploymentAlarms | None = None
    ) -> DeploymentRun:
        """The deployment's run, by the strategy its kind picks (its platform and style)."""
        strategy = strategy_for(deployment.kind)
        group = self.workspace.group(deployment.application, deployment.deployment_group)
        config = get_config(deployment.config_name, self.workspace.configs)
        if config is None:
            raise KeyError(f"deployment config {deployment.config_name} is no longer defined")
        triggers = TriggerDispatcher(
            group.triggers,
            lambda problem: self.store.append(  # a command's stderr may hold a secret
                ev.Note(deployment.id, self.clock.now(), self.workspace.redact(problem), "warning")
            ),
            self.watch,
        )
        context = RunContext(
            store=self.store,
            clock=self.clock,
            workspace=self.workspace,
            deployment=deployment,
            config=config,
            revision=self.snapshots.payload(deployment.revision, deployment.compute_platform),
            triggers=triggers,
            resume=resume,
            watch=self.watch,
            alarms=alarms,
        )
        return strategy(context)

    async def _watch_stop_requests(self, run: DeploymentRun) -> None:
        after = 0  # a stop asked for before this runner started counts too
        from engine.deployments.wake import WakeLine, wake_path  # a stop request pokes it

        wake = WakeLine(wake_path(self.workspace.state_dir, run.id))
        try:
            while True:
                for entry in self.store.stop_requests(run.id, after):
                    after = entry.seq
                    assert isinstance(entry.event, ev.StopRequested)
                    run.request_stop(StopRequest(entry.event.auto_rollback, entry.event.reason))
                await wake.wait(STOP_POLL_SECONDS)
        finally:
            wake.close()

    async def rollback_if_due(
        self, final: DeploymentInfo, stop: StopRequest | None
    ) -> DeploymentInfo | None:
        """Start the automatic rollback the deployment's settings or its stop request ask for."""
        if final.creator == CREATOR_ROLLBACK:
            return None
        if final.status == FAILED:
            due = final.options.auto_rollback.on(ROLLBACK_ON_FAILURE)
        elif final.status == STOPPED and stop is not None:
            due = (
                stop.auto_rollback
                if stop.auto_rollback is not None
                else final.options.auto_rollback.on(ROLLBACK_ON_STOP)
            )
        else:
            due = False
        if not due:
            if final.status != "Succeeded":
                reason = (
                    "stopped without rollback"
                    if final.status == STOPPED
                    else "automatic rollback is off"
                )
                self.store.append(
                    ev.RollbackLinked(final.id, self.clock.now(), message=f"No rollback: {reason}")
                )
            return None
        return await start_rollback(self.store, self.workspace, self.clock, final, self.watch)


async def start_rollback(
    store: Store,
    workspace: Workspace,
    clock: Clock,
    cause: DeploymentInfo,
    watch: ProcessWatch | None = None,
) -> DeploymentInfo | None:
    """Record a rollback deployment of the group's last successful revision
    (docs/codedeploy-service.md#rollback).

    It targets the instances `cause` touched, with its config (OneAtATime when that config
    cannot start on so few instances). Returns None, with the reason in rollbackInfo, when
    there is nothing to roll back to.
    """
    now = clock.now()
    cause = store.get_deployment(cause.id)
    previous = store.last_successful_revision(cause.application, cause.deployment_group)
    touched = [i.name for i in cause.instances if i.status != SKIPPED]
    reason = None
    if previous is None:
        reason = (
            f"No earlier successful deployment of {cause.deployment_group}: there is no "
            "revision to roll back to"
        )
    elif not touched:
        reason = "No instance was changed by this deployment: there is nothing to roll back"
    if reason is not None:
        store.append(ev.RollbackLinked(cause.id, now, message=reason))
        return None
    assert previous is not None
    config_name = cause.config_name
    config = get_config(config_name, workspace.configs)
    note = ""
    batches = cause.compute_platform == ComputePlatform.SERVER  # others move traffic back
    if batches and (config is None or BatchScheduler(config, touched).start_problem() is not None):
        note = (
            f" ({config_name} cannot run on {len(touched)} instance(s); "
            f"using {DEFAULT_SERVER_CONFIG})"
        )
        config_name = DEFAULT_SERVER_CONFIG
    rollback = DeploymentInfo(
        id=new_deployment_id(),
        application=cause.application,
        deployment_group=cause.deployment_group,
        config_name=config_name,
        status="Created",
        revision=previous,
        creator=CREATOR_ROLLBACK,
        description=f"Automatic rollback of {cause.id} to revision {previous.short()}{note}",
        previous_revision=cause.revision,
        create_time=now,
        options=DeploymentOptions(
            ignore_application_stop_failures=cause.options.ignore_application_stop_failures,
            file_exists_behavior=cause.options.file_exists_behavior,
            auto_rollback=AutoRollback(),
            time_scale=cause.options.time_scale,
        ),
        rollback=RollbackInfo(rollback_triggering_deployment_id=cause.id),
        compute_platform=cause.compute_platform,
        deployment_style=cause.deployment_style,
    )
    store.append_many(
        [
            ev.DeploymentCreated(rollback.id, now, rollback),
            ev.RollbackLinked(
                cause.id,
                now,
                rollback_deployment_id=rollback.id,
                message=ev.rollback_in_progress(rollback.id),
            ),
        ]
    )
    group = workspace.group(cause.application, cause.deployment_group)
    dispatcher = TriggerDispatcher(
        group.triggers,
        lambda problem: store.append(
            ev.Note(cause.id, clock.now(), workspace.redact(problem), "warning")
        ),
        watch,
    )
    if dispatcher.wants("DeploymentRollback"):
        info = store.get_deployment(cause.id)
        dispatcher.fire("DeploymentRollback", lambda trigger: deployment_message(trigger, info))
        await dispatcher.drain()
    return rollback


def use_pidfd_child_watcher() -> None:
    """On Python 3.11, wait for hook processes with pidfds instead of a thread per process
    (3.12 does this by default). Call inside the running loop; a no-op where unsupported."""
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


def _time_scale(store: Store, deployment_id: str) -> float:
    """The time scale the deployment was created with (1.0 when it cannot be read)."""
    try:
        return store.get_deployment(deployment_id, with_instances=False).options.time_scale
    except Exception:  # the run itself reports a deployment it cannot find
        return 1.0


def can_fork() -> bool:
    """Whether this process may fork a runner: it holds no thread but the main one and
    asyncio's idle executor workers (a console's threads could hold locks a child inherits)."""
    return hasattr(os, "fork") and all(
        thread is threading.main_thread() or thread.name.startswith("asyncio_")
        for thread in threading.enumerate()
    )


def fork_runner(
    workspace: Workspace, deployment_id: str, *, resume: bool, speed: float, log: Path
) -> ForkedRunner:
    """Run the deployment in a child of this process, in a session of its own, as `main`
    does: the engine's modules and the workspace are loaded already, so it starts at once.
    Its output goes to `log`; call only where `can_fork()`."""
    pid = fork_holding_sigint()  # the child takes Ctrl-C only as the runner (run_forked)
    if pid:
        return ForkedRunner(pid)
    asyncio.events._set_running_loop(None)  # the parent's loop runs on in the parent only
    run_forked(workspace, deployment_id, resume=resume, speed=speed, log=log)


def run_forked(
    workspace: Workspace, deployment_id: str, *, resume: bool, speed: float, log: Path
) -> NoReturn:
    """In a forked child: become the deployment's runner, in a session of its own with its
    output going to `log`, then exit without the parent's exit handlers."""
    from engine.forked import end_forked_child

    code = 1
    try:
        gc.freeze()  # what it inherited stays as is: collections would scan (and copy) it all
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # not what it inherited
        output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        nothing = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((nothing, 0), (output, 1), (output, 2)):
            os.dup2(fd, target)
        os.chdir(workspace.folder)
        code = run_deployment(workspace, deployment_id, resume=resume, speed=speed)
    except BaseException:
        traceback.print_exc()
    finally:
        end_forked_child(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.deployments.runner")
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args(argv)
    workspace = load_workspace(args.workspace).unwrap()
    return run_deployment(workspace, args.deployment, resume=args.resume, speed=args.speed)


def run_deployment(workspace: Workspace, deployment_id: str, *, resume: bool, speed: float) -> int:
    """A runner's whole life: the deployment (and its rollback), its watchdog, its store."""
    try:
        store = Store(workspace.state_dir / "state.db", wait_when_locked=True)
    except StoreError as error:
        print(f"deploydeck runner: {error}", file=sys.stderr)
        return 1
    speed = speed * _time_scale(store, deployment_id)
    clock: Clock = RealClock() if speed == 1.0 else ScaledClock(speed)
    watchdog: Watchdog | None = None
    try:
        watchdog = Watchdog(workspace.settings.kill_grace_seconds)
    except OSError as error:  # the deployment still runs; its hooks lose their safety net
        print(f"deploydeck runner: cannot start its watchdog: {error}", file=sys.stderr)
    from engine.targets.file_workers import FileWorkers  # pickle and mmap: a runner's only
    from engine.targets.hook_launcher import HookLauncher

    runner = DeploymentRunner(workspace, store, clock, watchdog)
    workers = FileWorkers(watch=watchdog)  # forked when a local instance first needs one
    launcher = HookLauncher(watch=watchdog)  # started when a local instance's first hook runs

    async def go() -> None:
        use_pidfd_child_watcher()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, runner.stop_current, StopRequest(False))
        use_file_workers(workers)
        use_launcher(launcher)
        try:
            await runner.run(deployment_id, resume=resume)
        finally:
            use_launcher(None)
            use_file_workers(None)
            # every helper is told first, so that they exit together; then each is waited for
            workers.hang_up()
            launcher.hang_up()
            if watchdog is not None:
                watchdog.hang_up()
            workers.close()
            launcher.close()

    try:
        asyncio.run(go())
    except StoreError as error:  # the state database failed under it (a full disk...)
        print(f"deploydeck runner: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
        if watchdog is not None:
            watchdog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
