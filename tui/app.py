"""The deploydeck console: plan, watch, stop and roll back deployments.

Commands down, events up: screens ask for the engine's few commands (create, stop, roll back,
resume) with messages (tui/messages.py) that the App runs; one worker tails the engine's
journal and folds every event into `state`; a timer publishes what changed (`fleet_changed`)
a few times a second, inside one batch update, and each screen redraws what concerns it.
Blocking work (journal reads, revision checks) runs in threads; a failed worker is notified
and logged, never silent. Nothing here changes engine state directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from engine.api import (
    Clock,
    CreateDeploymentRequest,
    Engine,
    EngineError,
    RealClock,
    Workspace,
    can_resume,
)
from engine.events import JournalEntry
from engine.model import TERMINAL_STATUSES, Status
from tui.actions import ACTIONS, APP, bindings
from tui.messages import (
    FleetChange,
    Navigator,
    RunEngineCommand,
    WorkerFailed,
)
from tui.render.state import FleetState
from tui.screens.choice import Choice, ChoiceScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.new_deployment import NewDeploymentScreen
from tui.screens.safe import leave
from tui.screens.watch import WatchRequest, WatchScreen

if TYPE_CHECKING:
    from tui.demo import Trickle

# The console's log: silent unless a caller (a test, `textual console`) attaches a handler; a
# terminal UI must not print on the screen it draws.
LOG = logging.getLogger("deploydeck.console")
LOG.addHandler(logging.NullHandler())

FLUSH_SECONDS = 0.15
FLUSH_BUDGET = 0.25  # at most this share of the time goes to drawing; flushes space out to keep it
DASHBOARD_REFRESH_SECONDS = 0.5


ORPHAN_CHECK_SECONDS = 3.0
WATCH_WAIT_SECONDS = 0.5  # how often a watch waiting for its group to be free asks again


class DeployDeckCommands(Provider):
    """The palette: the keys that apply on this screen, and deployments to open."""

    async def _commands(self) -> list[tuple[str, str, Any]]:
        app: DeployDeckApp = self.app  # type: ignore[assignment]
        screen = self.screen
        orphans, deployments = await app.engine.read_in_thread(
            lambda engine: (engine.orphans(), engine.list_deployments(limit=20))
        )
        found: list[tuple[str, str, Callable[[], object]]] = []
        for action in ACTIONS:
            if not action.palette:
                continue
            target = screen if action.scopes != (APP,) else app
            name = action.action.split("(")[0]
            if not hasattr(target, f"action_{name}"):
                continue
            check = getattr(target, "check_action", None)
            if check is not None and check(name, ()) is not True:
                continue
            found.append(
                (f"{action.description}", action.help, partial(target.run_action, action.action))
            )
        for orphan in orphans:
            found.append(
                (
                    f"Recover interrupted {orphan.id} (resume, stop or roll back)",
                    f"{orphan.application}/{orphan.deployment_group}: its engine process is gone",
                    partial(app.offer_recovery, orphan.id),
                )
            )
        for deployment in deployments:
            found.append(
                (
                    f"Open {deployment.id} ({deployment.deployment_group}, {deployment.status})",
                    f"{deployment.application}/{deployment.deployment_group} "
                    f"revision {deployment.revision.short()}",
                    partial(app.open_deployment, deployment.id),
                )
            )
        return found

    async def discover(self) -> Hits:
        for title, help_text, callback in await self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in await self._commands():
            score = max(matcher.match(title), matcher.match(help_text) * 0.5)  # titles first
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class DeployDeckApp(App[None]):
    TITLE = "deploydeck"
    CSS_PATH = "styles/app.tcss"
    BINDINGS = bindings(APP)
    COMMANDS = App.COMMANDS | {DeployDeckCommands}

    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Clock | None = None,
        speed: float = 1.0,
        open_deployment: str | None = None,
    ) -> None:
        super().__init__()
        self.engine = Engine(workspace, clock=clock, speed=speed)
        self.clock = clock or RealClock()
        self.state = FleetState()
        self.dirty: set[str] = set()
        self.watch_status = ""
        self._loaded_upto: dict[str, int] = {}
        self._start_seq = self.engine.journal_position()
        self._last_dashboard = 0.0
        self._last_tick = 0.0
        self._open_first = open_deployment
        self._offered: set[str] = set()  # interrupted deployments already offered for recovery
        self.watching: WatchRequest | None = None  # the folder `w` watches, if any
        self.trickle: Trickle | None = None  # the demo's requests through its balancer
        self._watch_what = ""
        self.interrupted: set[str] = set()  # deployments whose engine process is gone
        self._recovery_check: Worker[None] | None = None
        # deployments whose journal is being read: the tail keeps their events until it is
        self._loading: dict[str, list[JournalEntry]] = {}
        self.fleet_changed: Signal[FleetChange] = Signal(self, "fleet-changed")
        self.watch_changed: Signal[str] = Signal(self, "watch-changed")
        self.navigator = Navigator(
            self.open_deployment,
            self.action_new_deployment,
            self.action_watch_folder,
            self.fleet_changed,
            self.watch_changed,
        )

    def now(self) -> float:
        return self.clock.now()

    async def on_event(self, event: events.Event) -> None:
        # A key still travelling as the console closes finds no screen (Textual's key
        # handling would raise ScreenStackError): it is dropped.
        if isinstance(event, events.Key) and not self._screen_stacks.get(self._current_mode):
            return
        await super().on_event(event)

    # ---- life cycle ---------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen(self.engine, self.now, self.navigator))
        self.consume_events()
        self.set_timer(FLUSH_SECONDS, self.flush)
        if self._open_first:
            self.open_deployment(self._open_first)
        self.call_after_refresh(self.offer_recovery)
        # a runner killed while the console is open: noticed within seconds, and offered
        self.set_interval(ORPHAN_CHECK_SECONDS, self.offer_recovery)

    async def on_unmount(self) -> None:
        self.engine.close()

    @work(exclusive=True, group="engine", exit_on_error=False)
    async def consume_events(self) -> None:
        """The one consumer of the engine's event stream: fold, mark dirty, never draw."""
        async for entry in self.engine.events(None, after=self._start_seq):
            event = entry.event
            if event.deployment_id in self._loading:
                self._loading[event.deployment_id].append(entry)
                continue
            if entry.seq <= self._loaded_upto.get(event.deployment_id, 0):
                continue
            if self.state.apply(event) is not None:
                self.dirty.add(event.deployment_id)

    def flush(self) -> None:
        """Draw what changed, then re-arm: the next flush waits longer when drawing is slow, so
        a flood of events never starves the keyboard (dolphie's re-armed timer)."""
        started = time.monotonic()
        try:
            self._draw_dirty()
        finally:
            spent = time.monotonic() - started
            self.set_timer(max(FLUSH_SECONDS, spent / FLUSH_BUDGET), self.flush)

    def _draw_dirty(self) -> None:
        # named apart from App._flush, which Textual calls for captured prints
        now = time.monotonic()
        tick = now - self._last_tick >= 1.0  # elapsed times of running work move every second
        if tick:
            self._last_tick = now
        if not self.dirty and not tick:
            return
        dirty, self.dirty = self.dirty, set()
        dashboard = bool(dirty) and now - self._last_dashboard > DASHBOARD_REFRESH_SECONDS
        if dashboard:
            self._last_dashboard = now
        elif dirty:
            self.dirty.add("")  # come back for the dashboard on a later tick
        with self.batch_update():
            self.fleet_changed.publish(
                FleetChange(frozenset(dirty), frozenset(self.interrupted), tick, dashboard)
            )

    def refresh_dashboard(self) -> None:
        """The dashboard reads the engine again now (after a command, a watch's news)."""
        self._last_dashboard = time.monotonic()
        self.fleet_changed.publish(
            FleetChange(interrupted=frozenset(self.interrupted), dashboard=True)
        )

    # ---- what screens ask for (messages up) ---------------------------------------------

    @on(RunEngineCommand)
    def _command_wanted(self, message: RunEngineCommand) -> None:
        self.engine_command(message.command(self.engine), message.done)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker of the App's that failed is said and logged, never silent."""
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            self._say_failure(worker.description or worker.name or "background work", worker.error)

    @on(WorkerFailed)
    def _screen_worker_failed(self, message: WorkerFailed) -> None:
        """A screen's or widget's worker that failed (they pass it up), said the same way."""
        self._say_failure(message.what, message.error)

    def _say_failure(self, what: str, error: BaseException) -> None:
        self.log.error(f"{what} failed: {error!r}")  # textual's devtools console
        LOG.error("%s failed: %r", what, error, exc_info=error)
        self.notify(f"{what} failed: {error}", title="Error", severity="error", timeout=15)

    # ---- loading deployments ------------------------------------------------------------

    async def load_deployment(self, deployment_id: str) -> None:
        """Fold a deployment's whole journal into the state (once), read in a thread; the
        tail keeps what arrives meanwhile and it is folded after, in order."""
        if deployment_id in self.state.deployments or deployment_id in self._loading:
            return
        self._loading[deployment_id] = []
        try:
            entries = await self.engine.journal_in_thread(deployment_id)
        finally:
            held = self._loading.pop(deployment_id)
        upto = entries[-1].seq if entries else 0
        for entry in [*entries, *(e for e in held if e.seq > upto)]:
            self.state.apply(entry.event)
            upto = entry.seq
        self._loaded_upto[deployment_id] = upto
        self.dirty.add(deployment_id)

    def open_deployment(self, deployment_id: str, *, replay: bool = False) -> None:
        """Its screen at once (a key that follows finds it), drawn once its journal, read in
        a thread, is folded; an unknown id is said and its screen leaves."""
        if replay:
            entries = partial(self.engine.journal_in_thread, deployment_id)
            screen = DeploymentScreen(
                deployment_id, FleetState(), self.now, self.navigator, replay=entries
            )
        else:
            screen = self._live_screen(deployment_id)
        self.push_screen(screen)
        self._load(screen, follow=not replay)

    @work(group="load", exit_on_error=False, description="Reading a deployment's journal")
    async def _load(self, screen: DeploymentScreen, follow: bool) -> None:
        deployment_id = screen.deployment_id
        try:
            await self.engine.read_in_thread(lambda engine: engine.get_deployment(deployment_id))
        except EngineError as error:
            self.notify(str(error), severity="error")
            leave(screen)
            return
        if follow:
            await self.load_deployment(deployment_id)

    def _live_screen(self, deployment_id: str) -> DeploymentScreen:
        return DeploymentScreen(
            deployment_id,
            self.state,
            self.now,
            self.navigator,
            interrupted=deployment_id in self.interrupted,
        )

    def engine_command(self, command: Coroutine[Any, Any, Any], done: str) -> None:
        """Run an engine command; its errors become notifications, never crashes."""
        self._run_command(command, done)

    @work(group="commands", exit_on_error=False, description="An engine command")
    async def _run_command(self, command: Coroutine[Any, Any, Any], done: str) -> None:
        try:
            await command
        except EngineError as error:
            self.notify(str(error), title="Refused", severity="error", timeout=10)
            return
        self.notify(done)
        self.refresh_dashboard()

    async def running_deployments(self) -> list[str]:
        def read(engine: Engine) -> list[str]:
            orphans = {o.id for o in engine.orphans()}
            return [
                d.id
                for d in engine.list_deployments(limit=200)
                if d.status not in TERMINAL_STATUSES and d.id not in orphans
            ]

        return await self.engine.read_in_thread(read)

    # ---- actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    def action_new_deployment(self, group: tuple[str, str] | None = None) -> None:
        def created(request: CreateDeploymentRequest | None) -> None:
            if request is not None:
                self._create(request)

        self.push_screen(NewDeploymentScreen(self.engine, group), created)

    @work(group="commands", exit_on_error=False, description="Creating the deployment")
    async def _create(self, request: CreateDeploymentRequest) -> None:
        try:
            deployment = await self.engine.create_deployment(request)
        except EngineError as error:
            self.notify(str(error), title="Refused", severity="error", timeout=10)
            return
        self.push_screen(self._live_screen(deployment.id))
        await self.load_deployment(deployment.id)

    def action_quit_console(self) -> None:
        self._quit()

    @work(exclusive=True, group="quit", exit_on_error=False, description="Quitting")
    async def _quit(self) -> None:
        running = await self.running_deployments()
        if not running:
            self.exit()
            return
        after = await self.engine.read_in_thread(
            lambda engine: [_after_stop(engine, d) for d in running]
        )
        names = ", ".join(running)
        body = (
            f"{names} {'is' if len(running) == 1 else 'are'} running. Leaving means "
            f"{'it keeps' if len(running) == 1 else 'they keep'} running in "
            f"{'its' if len(running) == 1 else 'their'} own engine process: reopen the console, "
            "or run `deploydeck get-deployment`, to see how it ends.\n\nStop and quit ends the "
            "running hooks and skips the instances not started, then:\n"
            + "\n".join(f"• {line}" for line in after)
        )

        def answered(choice: str | None) -> None:
            if choice == "leave":
                self.exit()
            elif choice == "stop":
                self._stop_all_and_exit(running)

        self.push_screen(
            ChoiceScreen(
                "Quit with a deployment running?",
                body,
                [
                    Choice("l", "Leave it running", "leave", "primary"),
                    Choice("s", "Stop and quit", "stop", "error"),
                    Choice("c", "Cancel", "cancel"),
                ],
                default="cancel",
            ),
            answered,
        )

    @work(group="commands", exit_on_error=False, description="Stopping before quitting")
    async def _stop_all_and_exit(self, deployment_ids: list[str]) -> None:
        for deployment_id in deployment_ids:
            try:
                await self.engine.stop_deployment(deployment_id)
            except EngineError:
                pass
        self.exit()

    def offer_recovery(self, deployment_id: str | None = None) -> None:
        """An interrupted deployment in the store: resume, stop or roll back, or decide later.
        Each is offered once a session (the palette offers it again); then the next one."""
        if isinstance(self.screen, ChoiceScreen):
            return  # one question at a time; the next check comes back for the rest
        checking = self._recovery_check
        if deployment_id is None and checking is not None and not checking.is_finished:
            return  # a slow read still runs: the periodic check waits for it
        self._recovery_check = self._offer_recovery(deployment_id)

    @work(group="recovery", exit_on_error=False, description="Recovery check")
    async def _offer_recovery(self, deployment_id: str | None) -> None:
        found = await self.engine.read_in_thread(lambda engine: engine.orphans())
        if isinstance(self.screen, ChoiceScreen):
            return  # a question came up meanwhile; the next check comes back for the rest
        interrupted = {o.id for o in found}
        self.dirty.update(interrupted ^ self.interrupted)  # their screens say so (or stop)
        self.interrupted = interrupted
        orphans = [
            o
            for o in found
            if (o.id == deployment_id if deployment_id else o.id not in self._offered)
        ]
        if not orphans:
            return
        orphan = orphans[0]
        self._offered.add(orphan.id)
        counts = (
            orphan.overview()
            if orphan.instances
            else await self.engine.read_in_thread(lambda e: e.instance_counts(orphan.id))
        )
        done = counts.get(Status.SUCCEEDED, 0) + counts.get(Status.FAILED, 0)
        if orphan.blue_green is None:  # the list leaves out a blue/green one's fleets and waits
            orphan = await self.engine.read_in_thread(lambda e: e.get_deployment(orphan.id))
        resumable = can_resume(orphan)
        waiting = orphan.blue_green.wait_type if orphan.blue_green is not None else None
        if waiting:  # a blue/green deployment in a wait
            choices = (
                f"Resume: traffic stays (or is put again) where it was, and the "
                f"{waiting} goes on to its deadline. Stop: it ends Stopped, traffic where it "
                "is. Roll back: stop, then traffic goes back to blue and green is blocked."
            )
        elif resumable:
            choices = (
                "Resume: its unfinished instances run again from their first event. Stop: what "
                "was running is marked Failed, the rest Skipped. Roll back: stop, then redeploy "
                "the previous revision to the instances it changed."
            )
        else:
            choices = (
                "A blue/green deployment cannot be resumed outside its ready and termination "
                "waits: hooks were under way and traffic maybe half moved. Stop: it ends "
                "Stopped (rolled back if the group rolls back on a stop). Roll back: stop, then "
                "traffic goes back to blue and green is blocked (while blue runs)."
            )
        body = (
            f"{orphan.id} ({orphan.application}/{orphan.deployment_group}, revision "
            f"{orphan.revision.short()}) was {orphan.status} when its engine process stopped; "
            f"{done} of {sum(counts.values())} instances had finished.\n\n{choices}"
        )

        def answered(choice: str | None) -> None:
            engine = self.engine
            if choice == "resume":
                self.engine_command(engine.resume_deployment(orphan.id), f"Resuming {orphan.id}")
                self.open_deployment(orphan.id)
            elif choice == "stop":
                self.engine_command(
                    engine.stop_deployment(orphan.id, False), f"Stopped {orphan.id}"
                )
            elif choice == "rollback":
                self.engine_command(
                    engine.stop_deployment(orphan.id, True), f"Rolling back {orphan.id}"
                )
            self.call_later(self.offer_recovery)  # the next interrupted one, if any

        self.push_screen(
            ChoiceScreen(
                "An interrupted deployment was found",
                body,
                [
                    *([Choice("r", "Resume", "resume", "primary")] if resumable else []),
                    Choice("s", "Stop", "stop", "error"),
                    Choice("b", "Roll back", "rollback", "warning"),
                    Choice("l", "Later", "later"),
                ],
                default="later",
            ),
            answered,
        )

    # ---- watch --------------------------------------------------------------------------

    def action_watch_folder(self) -> None:
        if self.watching is not None:  # one watch at a time: stop it, or watch another
            folder = self.watching.folder

            def answered(choice: str | None) -> None:
                if choice == "stop":
                    self.stop_watching()
                elif choice == "other":
                    self.push_screen(WatchScreen(self._watch_targets()), self._watch_chosen)

            self.push_screen(
                ChoiceScreen(
                    f"Watching {folder}",
                    f"{self.watch_status}\n\nStop watching it, or watch another folder instead?",
                    [
                        Choice("s", "Stop watching", "stop", "warning"),
                        Choice("o", "Watch another", "other", "primary"),
                        Choice("c", "Keep watching", "keep"),
                    ],
                    default="keep",
                ),
                answered,
            )
            return
        self.push_screen(WatchScreen(self._watch_targets()), self._watch_chosen)

    def _watch_targets(self) -> list[tuple[str, str]]:
        """The groups a watch may deploy to: (application, group)."""
        workspace = self.engine.workspace
        return [
            (a, g)
            for a, application in workspace.applications.items()
            for g in application.deployment_groups
        ]

    def _watch_chosen(self, request: WatchRequest | None) -> None:
        if request is not None:
            self.watching = request
            self.watch_folder(request)

    def stop_watching(self) -> None:
        self.workers.cancel_group(self, "watch")
        if self.watching is not None:
            self.notify(f"Stopped watching {self.watching.folder}")
        self.watching = None
        self._set_watch("")

    @work(exclusive=True, group="watch", exit_on_error=False, description="The folder watch")
    async def watch_folder(self, request: WatchRequest) -> None:
        from watchfiles import awatch

        self._watch_what = (
            f"watching {request.folder}"
            + (f" → {'/'.join(request.deploy_to)}" if request.deploy_to else " (validate only)")
            + " (until the console closes)"
        )
        self._set_watch(f"{self._watch_what} · w: stop or change")
        self.notify("The watch lasts while the console is open: it is not restored on restart")
        await self._check_watched(request, deploy=False)
        async for _ in awatch(request.folder, debounce=400, step=100):
            await self._check_watched(request, deploy=True)

    async def _check_watched(self, request: WatchRequest, deploy: bool) -> None:
        stamp = time.strftime("%H:%M:%S")
        try:
            # scanning and hashing a large revision takes a while: not on the event loop
            checked = await self.engine.check_in_thread(request.folder)
        except EngineError as error:
            first = error.diagnostics[0] if error.diagnostics else error
            self._set_watch(f"{self._watch_what} · {stamp} ✖ {first}")
            self.notify(f"{request.folder.name}: {error}", severity="error")
            return
        warnings = f", {len(checked.warnings)} warning(s)" if checked.warnings else ""
        result = f"{stamp} ✔ valid (sha256 {checked.ref.short()}){warnings}"
        self._set_watch(f"{self._watch_what} · {result}")
        if not (deploy and request.deploy_to):
            return
        app_name, group = request.deploy_to
        last, busy, orphans = await self.engine.read_in_thread(
            lambda engine: (
                engine.last_successful_revision(app_name, group),
                engine.active_deployment(app_name, group),
                {o.id for o in engine.orphans()},
            )
        )
        if last is not None and last.sha256 == checked.ref.sha256:
            # e.g. an appspec broken, then restored: the group already runs this content
            self._set_watch(
                f"{self._watch_what} · {result} · {group} already runs it: not redeployed"
            )
            return
        if busy is not None and busy not in orphans:
            # deployed once the group is free (the folder is checked again then)
            self._set_watch(f"{self._watch_what} · {result} · waits for {busy} to end")
            await self._until_free(app_name, group, busy)
            await self._check_watched(request, deploy=True)
            return
        try:
            deployment = await self.engine.create_deployment(
                CreateDeploymentRequest(
                    app_name,
                    group,
                    revision_path=request.folder,
                    description=f"watch: change in {request.folder}",
                )
            )
        except EngineError as error:
            self._set_watch(f"{self._watch_what} · {result} · not deployed: {error}")
            self.notify(f"Not deployed: {error}", severity="warning")
            return
        self._set_watch(f"{self._watch_what} · {result} · deploying as {deployment.id}")
        self.notify(f"Deploying the change as {deployment.id}")

    async def _until_free(self, application: str, group: str, busy: str) -> None:
        """Until `busy` is no longer the group's active deployment (or its engine is gone),
        asked in the reading thread every so often."""

        def still_busy(engine: Engine) -> bool:
            active = engine.active_deployment(application, group)
            return active == busy and busy not in {o.id for o in engine.orphans()}

        while await self.engine.read_in_thread(still_busy):
            await asyncio.sleep(WATCH_WAIT_SECONDS)

    def _set_watch(self, text: str) -> None:
        self.watch_status = text
        self.watch_changed.publish(text)

    # ---- system commands ----------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's own Quit would skip the question about running deployments (ours is
        # among the keys), and its Screenshot duplicates ours, which says where it saved.
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Screenshot"):
                yield command
        yield SystemCommand(
            "Save a screenshot", "Save an SVG of this screen", self.action_screenshot
        )

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """An SVG of this screen, drawn now and written without holding up the loop."""
        stamp = datetime.now().strftime("%Y-%m-%dT%H_%M_%S")
        target = Path(path or ".").expanduser() / (filename or f"{self.title}_{stamp}.svg")
        self._write_screenshot(target, self.export_screenshot())

    @work(group="screenshot", exit_on_error=False, description="Saving the screenshot")
    async def _write_screenshot(self, target: Path, svg: str) -> None:
        async with aiofiles.open(target, "w", encoding="utf-8") as file:
            await file.write(svg)
        self.notify(f"Saved {target}")


def _after_stop(engine: Engine, deployment_id: str) -> str:
    """What follows a plain stop (as CodeDeploy: a rollback only if the group rolls back on
    DEPLOYMENT_STOP_ON_REQUEST), said before the console closes. Runs in the reading thread."""
    try:
        info = engine.get_deployment(deployment_id)
    except EngineError:
        return f"{deployment_id}: gone"
    if not info.options.auto_rollback.on("DEPLOYMENT_STOP_ON_REQUEST"):
        return f"{deployment_id}: no rollback ({info.deployment_group} does not roll back on stop)"
    counts = engine.instance_counts(deployment_id)
    changed = sum(n for s, n in counts.items() if s not in (Status.PENDING, Status.SKIPPED))
    target = (
        f"revision {info.previous_revision.short()}"
        if info.previous_revision
        else "its last successful revision (none yet: nothing to roll back)"
    )
    return (
        f"{deployment_id}: {info.deployment_group}'s auto-rollback on stop then redeploys "
        f"{target} to the {changed} instance(s) it changed, after the console has closed"
    )
