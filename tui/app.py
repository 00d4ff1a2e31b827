"""The deploydeck console: plan, watch, stop and roll back deployments.

Commands down, events up: screens call the engine's few commands (create, stop, roll back,
resume) through `engine_command`; one worker tails the engine's journal and folds every event
into `state`; a timer flushes what changed to the visible screens a few times a second, inside
one batch update. Nothing here changes engine state directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from engine.api import CreateDeploymentRequest, Engine, EngineError
from engine.clock import Clock, RealClock
from engine.model import TERMINAL_STATUSES, RevisionRef
from engine.workspace import Workspace
from tui.actions import ACTIONS, APP, bindings
from tui.render.state import FleetState
from tui.screens.choice import Choice, ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.instance import InstanceScreen
from tui.screens.new_deployment import NewDeploymentScreen
from tui.screens.watch import WatchRequest, WatchScreen

FLUSH_SECONDS = 0.15
FLUSH_BUDGET = 0.25  # at most this share of the time goes to drawing; flushes space out to keep it
DASHBOARD_REFRESH_SECONDS = 0.5


ORPHAN_CHECK_SECONDS = 3.0


class DeployDeckCommands(Provider):
    """The palette: the keys that apply on this screen, and deployments to open."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        app: DeployDeckApp = self.app  # type: ignore[assignment]
        screen = self.screen
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
        for orphan in app.engine.orphans():
            found.append(
                (
                    f"Recover interrupted {orphan.id} (resume, stop or roll back)",
                    f"{orphan.application}/{orphan.deployment_group}: its engine process is gone",
                    partial(app.offer_recovery, orphan.id),
                )
            )
        for deployment in app.engine.list_deployments(limit=20):
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
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
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
        self._start_seq = self.engine.store.last_seq()
        self._last_dashboard = 0.0
        self._last_tick = 0.0
        self._open_first = open_deployment
        self._offered: set[str] = set()  # interrupted deployments already offered for recovery
        self.watching: WatchRequest | None = None  # the folder `w` watches, if any
        self._watch_what = ""
        self.interrupted: set[str] = set()  # deployments whose engine process is gone

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
        self.push_screen(DashboardScreen())
        self.consume_events()
        self.set_timer(FLUSH_SECONDS, self.flush)
        if self._open_first:
            self.open_deployment(self._open_first)
        self.call_after_refresh(self.offer_recovery)
        # a runner killed while the console is open: noticed within seconds, and offered
        self.set_interval(ORPHAN_CHECK_SECONDS, self.offer_recovery)

    async def on_unmount(self) -> None:
        self.engine.store.close()

    @work(exclusive=True, group="engine", exit_on_error=False)
    async def consume_events(self) -> None:
        """The one consumer of the engine's event stream: fold, mark dirty, never draw."""
        async for entry in self.engine.events(None, after=self._start_seq):
            event = entry.event
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
        if now - self._last_tick >= 1.0:  # elapsed times of running work move every second
            self._last_tick = now
            for screen in self.screen_stack:
                if (
                    isinstance(screen, (DeploymentScreen, InstanceScreen))
                    and screen.is_running_view()
                ):
                    self.dirty.add(screen.deployment_id)
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        with self.batch_update():
            for screen in self.screen_stack:
                if (
                    isinstance(screen, DeploymentScreen)
                    and screen.live
                    and screen.deployment_id in dirty
                ) or (isinstance(screen, InstanceScreen) and screen.deployment_id in dirty):
                    screen.refresh_view()  # a screen not mounted yet, or gone, draws nothing
                elif isinstance(screen, ConfirmScreen) and screen.deployment_id in dirty:
                    screen.refresh_text()  # an open question follows the deployment
        if time.monotonic() - self._last_dashboard > DASHBOARD_REFRESH_SECONDS:
            self.refresh_dashboard()
        else:
            self.dirty.add("")  # come back for the dashboard on a later tick

    def refresh_dashboard(self) -> None:
        self._last_dashboard = time.monotonic()
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.refresh_data()

    # ---- helpers for screens ------------------------------------------------------------

    def revision_label(self, ref: RevisionRef | None) -> str:
        if ref is None:
            return ""
        return Path(ref.location).name

    def load_deployment(self, deployment_id: str) -> None:
        """Fold a deployment's whole journal into the state (once); the tail carries on."""
        if deployment_id in self.state.deployments:
            return
        entries = self.engine.store.journal(deployment_id, limit=10_000_000)
        for entry in entries:
            self.state.apply(entry.event)
        if entries:
            self._loaded_upto[deployment_id] = entries[-1].seq

    def open_deployment(self, deployment_id: str, *, replay: bool = False) -> None:
        try:
            self.engine.get_deployment(deployment_id)
        except EngineError as error:
            self.notify(str(error), severity="error")
            return
        if replay:
            entries = self.engine.store.journal(deployment_id, limit=10_000_000)
            self.push_screen(DeploymentScreen(deployment_id, FleetState(), replay=entries))
            return
        self.load_deployment(deployment_id)
        self.push_screen(DeploymentScreen(deployment_id, self.state))

    def engine_command(self, command: Coroutine[Any, Any, Any], done: str) -> None:
        """Run an engine command; its errors become notifications, never crashes."""
        self._run_command(command, done)

    @work(group="commands", exit_on_error=False)
    async def _run_command(self, command: Coroutine[Any, Any, Any], done: str) -> None:
        try:
            await command
        except EngineError as error:
            self.notify(str(error), title="Refused", severity="error", timeout=10)
            return
        self.notify(done)
        self.refresh_dashboard()

    def running_deployments(self) -> list[str]:
        orphans = {o.id for o in self.engine.orphans()}
        return [
            d.id
            for d in self.engine.list_deployments(limit=200)
            if d.status not in TERMINAL_STATUSES and d.id not in orphans
        ]

    # ---- actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    def action_new_deployment(self, group: tuple[str, str] | None = None) -> None:
        def created(request: CreateDeploymentRequest | None) -> None:
            if request is not None:
                self._create(request)

        self.push_screen(NewDeploymentScreen(group), created)

    @work(group="commands", exit_on_error=False)
    async def _create(self, request: CreateDeploymentRequest) -> None:
        try:
            deployment = await self.engine.create_deployment(request)
        except EngineError as error:
            self.notify(str(error), title="Refused", severity="error", timeout=10)
            return
        self.load_deployment(deployment.id)
        self.push_screen(DeploymentScreen(deployment.id, self.state))

    def action_quit_console(self) -> None:
        running = self.running_deployments()
        if not running:
            self.exit()
            return
        names = ", ".join(running)
        body = (
            f"{names} {'is' if len(running) == 1 else 'are'} running. Leaving means "
            f"{'it keeps' if len(running) == 1 else 'they keep'} running in "
            f"{'its' if len(running) == 1 else 'their'} own engine process: reopen the console, "
            "or run `deploydeck get-deployment`, to see how it ends.\n\nStop and quit ends the "
            "running hooks and skips the instances not started, then:\n"
            + "\n".join(f"• {self._after_stop(d)}" for d in running)
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

    def _after_stop(self, deployment_id: str) -> str:
        """What follows a plain stop (as CodeDeploy: a rollback only if the group rolls back
        on DEPLOYMENT_STOP_ON_REQUEST), said before the console closes."""
        try:
            info = self.engine.get_deployment(deployment_id)
        except EngineError:
            return f"{deployment_id}: gone"
        if not info.options.auto_rollback.on("DEPLOYMENT_STOP_ON_REQUEST"):
            return (
                f"{deployment_id}: no rollback ({info.deployment_group} does not roll back on stop)"
            )
        counts = self.engine.store.instance_counts(deployment_id)
        changed = sum(n for s, n in counts.items() if s not in ("Pending", "Skipped"))
        target = (
            f"revision {info.previous_revision.short()}"
            if info.previous_revision
            else "its last successful revision (none yet: nothing to roll back)"
        )
        return (
            f"{deployment_id}: {info.deployment_group}'s auto-rollback on stop then redeploys "
            f"{target} to the {changed} instance(s) it changed, after the console has closed"
        )

    @work(group="commands", exit_on_error=False)
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
        found = self.engine.orphans()
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
            orphan.overview() if orphan.instances else self.engine.store.instance_counts(orphan.id)
        )
        done = counts.get("Succeeded", 0) + counts.get("Failed", 0)
        body = (
            f"{orphan.id} ({orphan.application}/{orphan.deployment_group}, revision "
            f"{orphan.revision.short()}) was {orphan.status} when its engine process stopped; "
            f"{done} of {sum(counts.values())} instances had finished.\n\n"
            "Resume: its unfinished instances run again from their first event. Stop: what was "
            "running is marked Failed, the rest Skipped. Roll back: stop, then redeploy the "
            "previous revision to the instances it changed."
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
                    Choice("r", "Resume", "resume", "primary"),
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
                    self.push_screen(WatchScreen(), self._watch_chosen)

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
        self.push_screen(WatchScreen(), self._watch_chosen)

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

    @work(exclusive=True, group="watch", exit_on_error=False)
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
            checked = self.engine.check(request.folder)
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
        last = self.engine.store.last_successful_revision(app_name, group)
        if last is not None and last.sha256 == checked.ref.sha256:
            # e.g. an appspec broken, then restored: the group already runs this content
            self._set_watch(
                f"{self._watch_what} · {result} · {group} already runs it: not redeployed"
            )
            return
        busy = self.engine.store.active_deployment(app_name, group)
        if busy is not None and busy not in {o.id for o in self.engine.orphans()}:
            # deployed once the group is free (the folder is checked again then)
            self._set_watch(f"{self._watch_what} · {result} · waits for {busy} to end")
            await self.engine.wait(busy)
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

    def _set_watch(self, text: str) -> None:
        self.watch_status = text
        self.refresh_dashboard()

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
        saved = self.save_screenshot(filename, path)
        self.notify(f"Saved {saved}")
