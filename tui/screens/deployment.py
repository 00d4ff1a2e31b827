"""One deployment, live or replayed: header, progress, a table per batch, output and evidence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import DataTable, Input, ProgressBar, Static

from engine.events import JournalEntry
from engine.model import SERVER_IN_PLACE_EVENTS, TERMINAL_STATUSES, ComputePlatform, Status
from tui.actions import DEPLOYMENT, bindings
from tui.messages import FleetChange, Navigator, RunEngineCommand, SaysWorkerFailures
from tui.render.glyphs import duration, revision_label, status
from tui.render.plain import time_scaled
from tui.render.state import DeploymentView, FleetState, InstanceView
from tui.render.stop_traffic import names_text as _names
from tui.render.stop_traffic import rollback_paragraph, stop_paragraph
from tui.screens.confirm import ConfirmScreen
from tui.screens.safe import drawable, leave
from tui.screens.shift_keys import SHIFT_KEYS, ShiftKeys, shift_key_applies
from tui.widgets.batch_table import BatchTable
from tui.widgets.fleet_waits import FleetWaits
from tui.widgets.footer import KeysFooter
from tui.widgets.host_status import HostLineReader, engine_of
from tui.widgets.log_pane import LogPane
from tui.widgets.traffic_view import TrafficView
from tui.widgets.weight_gauge import WeightGauge

if TYPE_CHECKING:
    from tui.demo import TrickleCounts

STATUS_WORDS = {
    "succeeded": Status.SUCCEEDED,
    "ok": Status.SUCCEEDED,
    "failed": Status.FAILED,
    "fail": Status.FAILED,
    "inprogress": Status.IN_PROGRESS,
    "running": Status.IN_PROGRESS,
    "run": Status.IN_PROGRESS,
    "pending": Status.PENDING,
    "wait": Status.PENDING,
    "skipped": Status.SKIPPED,
    "skip": Status.SKIPPED,
}
MAX_REPLAY_GAP = 2.0


def instance_filter(text: str):
    """`failed web !web-3`: every token must hold; a status word matches the status, any other
    word a part of the name; `!` negates."""
    tokens = text.split()

    def keep(view: InstanceView) -> bool:
        for token in tokens:
            negate = token.startswith("!")
            word = token[1:] if negate else token
            wanted = STATUS_WORDS.get(word.lower())
            hit = view.status == wanted if wanted else word.lower() in view.name.lower()
            if hit == negate:
                return False
        return True

    return keep


class DeploymentScreen(ShiftKeys, SaysWorkerFailures, Screen[None]):
    BINDINGS = bindings(DEPLOYMENT)
    AUTO_FOCUS = "BatchTable"

    def __init__(
        self,
        deployment_id: str,
        state: FleetState,
        now: Callable[[], float],
        navigator: Navigator,
        *,
        interrupted: bool = False,
        replay: Callable[[], Awaitable[list[JournalEntry]]] | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.state = state
        self.clock_now = now  # the console's clock (a test's may be manual)
        self.navigator = navigator
        self.interrupted = interrupted  # its engine process is gone (the App says so)
        self._question: ConfirmScreen | None = None  # an open stop or rollback question
        self.replay_source = replay  # a replay reads its journal (once mounted) from here
        self.speed = speed
        self.paused = False
        self.filter_text = ""
        self.selected: str | None = None
        self._tables: dict[int | None, BatchTable] = {}
        self._binding_state: tuple[str, bool, str] | None = None
        # replay clock: (journal time, monotonic time it was reached, next event's time)
        self._replay_clock = (0.0, time.monotonic(), 0.0)
        # made here, not found by query: they exist before compose and after dismiss
        self.header_text = Static(id="header")
        self.progress_bar = ProgressBar(total=1, show_eta=False, id="progress")
        self.fleet_waits = FleetWaits(id="fleet-waits")
        self.traffic_view = TrafficView(id="traffic")
        self.traffic_view.display = False
        self.filter_box = Input(
            placeholder="filter: a name or a status (failed, running, !web-1); "
            "applies as you type; enter keeps it, esc clears",
            id="filter",
        )
        self.filter_box.display = False
        self.weight_gauge = WeightGauge(id="weight-gauge")
        self.weight_gauge.display = False
        self.batches = VerticalScroll(id="batches")
        self.output_pane = LogPane(id="log")
        self.evidence_pane = Static(id="evidence")
        # the group's balancer or service host, read every few seconds (live only)
        self.host_line: Text | None = None
        self.host_reader = HostLineReader(self, self._host_read)

    @property
    def view(self) -> DeploymentView | None:
        return self.state.deployments.get(self.deployment_id)

    @property
    def live(self) -> bool:
        return self.replay_source is None

    def now(self) -> float:
        """The time the screen shows, on the deployment's own clock: the wall clock (sped up
        by a time-scaled run's scale), or the replay's position in the journal (so elapsed
        times are those of the original run)."""
        if self.live:
            view = self.view
            wall = self.clock_now()
            return view.clock.now(view, wall) if view is not None else wall
        reached, at, limit = self._replay_clock
        if self.paused:
            return reached
        return min(limit, reached + (time.monotonic() - at) * self.speed)

    def is_running_view(self) -> bool:
        view = self.view
        return self.live and view is not None and view.ended is None and not self.interrupted

    @property
    def running(self) -> bool:
        view = self.view
        return self.live and view is not None and view.status not in TERMINAL_STATUSES

    def compose(self) -> ComposeResult:
        yield self.header_text
        yield self.progress_bar
        yield self.fleet_waits
        yield self.traffic_view
        yield self.filter_box
        yield self.weight_gauge
        yield self.batches
        with Horizontal(id="side"):
            yield self.output_pane
            yield self.evidence_pane
        yield KeysFooter()

    def on_mount(self) -> None:
        self.refresh_view()
        if self.replay_source is not None:
            self.run_replay()
        else:
            self.navigator.fleet_changed.subscribe(self, self._fleet_changed, immediate=True)

    def _fleet_changed(self, change: FleetChange) -> None:
        """The App's news: redraw when this deployment changed, or every second while it runs
        (its elapsed times move); an open question follows it."""
        gone = self.deployment_id in change.interrupted
        changed = self.deployment_id in change.changed or gone != self.interrupted
        self.interrupted = gone
        if changed or (change.tick and self.is_running_view()):
            self.refresh_view()  # a screen not mounted yet, or gone, draws nothing
            if self._question is not None and self._question.is_attached:
                self._question.refresh_text()

    # ---- drawing ------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not drawable(self):
            return  # not composed yet (on_mount draws) or already dismissed
        view = self.view
        if view is None:
            self.header_text.update(f"{self.deployment_id}: loading…")
            return
        info = view.info
        engine = engine_of(self) if self.live else None
        self.host_reader.follow(engine, info.application, info.deployment_group)
        with self.app.batch_update():
            self._header(view)
            self.weight_gauge.show(view, self.now(), self.host_line)
            self.fleet_waits.show(view, self.clock_now() if self.live else self.now(), self.live)
            self.traffic_view.show(view, self._trickle_counts(view), self.host_line)
            if self.weight_gauge.display:  # a traffic shift's gauge has its alarm lights
                self.traffic_view.display = False
            self._tables_for(view)
            self._side(view)
        shift = view.shift.state if view.shift is not None else ""
        waiting = view.wait.wait_type if view.wait is not None else ""
        state = (view.status + waiting, bool(view.rollback_id or view.rolls_back), shift)
        if state != self._binding_state:  # the footer recomposes on refresh: only on change
            self._binding_state = state
            self.refresh_bindings()

    def _host_read(self, line: Text | None) -> None:
        self.host_line = line
        self.refresh_view()

    def _trickle_counts(self, view: DeploymentView) -> TrickleCounts | None:
        """The demo trickle's answers while this deployment ran, when it goes through this
        deployment's balancer (None otherwise, and in a replay)."""
        trickle = getattr(self.app, "trickle", None)
        info = view.info
        if (
            trickle is None
            or not self.live
            or (info.application, info.deployment_group) != (trickle.group)
        ):
            return None
        counts: TrickleCounts = trickle.counts(info.create_time, view.ended)
        return counts

    def _header(self, view: DeploymentView) -> None:
        info = view.info
        now = self.now()
        elapsed = duration((view.ended or now) - view.started) if view.started else ""
        if elapsed and info.options.time_scale != 1.0:  # every time shown is the run's
            elapsed += f" x{info.options.time_scale:g}"
        # a replay says so first: the status it shows is the journal's, not what runs now
        replay = (
            (f" REPLAY {self.speed:g}x{' paused' if self.paused else ''} ", "bold reverse")
            if not self.live
            else ""
        )
        # the status first: on a narrow terminal the rest wraps, the status stays in view
        title = Text.assemble(
            replay,
            " " if replay else "",
            (f"{info.id}  ", "bold"),
            status(view.status),
            " (recorded)" if replay else "",
            f" {elapsed}" if elapsed else "",
            f"  ·  {info.application}/{info.deployment_group}  ·  "
            f"{info.config_name.replace('CodeDeployDefault.', '')}  ·  revision ",
            (info.revision.short(), "bold"),
            f" {revision_label(info.revision)}",
        )
        lines = [title]
        details = [f"creator {info.creator}"]
        message = view.rollback_message or ""
        if view.rollback_id:
            linked = f"rolled back by {view.rollback_id} (l to open)"
            if view.rollback_id in message:  # "Rolled back by d-…, which succeeded"
                how = message.split(view.rollback_id, 1)[1].strip(" ,.")
                details.append(f"{linked}, {how}" if how else linked)
            else:
                details.extend([linked, message] if message else [linked])
        elif message:
            details.append(message)
        if view.rolls_back:
            details.append(f"rolls back {view.rolls_back} (l to open)")
        if view.target_weight is not None:
            details.append(f"target version {view.target_weight:.0%} of traffic")
        if view.info.options.time_scale != 1.0:
            details.append(time_scaled(view.info.options.time_scale).strip(" ()"))
        if self.live and view.ended is None and self.interrupted:
            details.append(
                "INTERRUPTED: its engine process is gone; : then 'Recover' to resume, stop or "
                "roll it back"
            )
        if not self.live:
            details.append(
                "a replay of the journal: +/- speed, space pause (stop and roll back act live only)"
            )
        if self.filter_text:
            details.append(f"filter: {self.filter_text}")
        lines.append(Text("  ·  ".join(details), style="dim"))
        if view.ended and view.message:
            style = "green" if view.status == Status.SUCCEEDED else "red"
            code = (
                f"[{view.error_code}] "
                if view.error_code and view.error_code not in view.message
                else ""
            )
            lines.append(Text(code + view.message, style=style))
        self.header_text.update(Text("\n").join(lines))
        self.progress_bar.update(total=PROGRESS_STEPS, progress=progress_steps(view))

    def _tables_for(self, view: DeploymentView) -> None:
        keep = instance_filter(self.filter_text)
        container = self.batches
        groups: list[tuple[int | None, list[InstanceView]]] = []
        started: set[str] = set()
        for index, batch in enumerate(view.batches, 1):
            members = [view.instances[n] for n in batch if n in view.instances]
            started.update(batch)
            groups.append((index, members))
        pending = [i for n, i in view.instances.items() if n not in started]
        if pending:
            groups.append((None, pending))
        for key, members in groups:
            table = self._tables.get(key)
            if table is None:
                table = BatchTable(key, view.lifecycle, self.now, id=f"batch-{key or 'pending'}")
                self._tables[key] = table
                container.mount(table, before=self._tables.get(None) if key is not None else None)
            shown = [m for m in members if keep(m)]
            table.show(shown)
            counts: dict[str, int] = {}
            for member in members:
                counts[member.status] = counts.get(member.status, 0) + 1
            summary = "  ".join(
                f"{status(s).plain.split()[0]} {n}" for s, n in sorted(counts.items())
            )
            name = f"batch {key}" if key is not None else _unbatched(view)
            hidden = (
                f" · {len(members) - len(shown)} hidden by filter"
                if len(shown) != len(members)
                else ""
            )
            table.border_title = f"{name} · {len(members)} instance(s) · {summary}{hidden}"
        if None in self._tables and not pending:
            self._tables.pop(None).remove()
        if self.selected is None and view.instances:
            self.selected = _first_interesting(view)
        if self.focused is None or (isinstance(self.focused, Input) and not self.focused.display):
            self._focus_selected()

    def _side(self, view: DeploymentView) -> None:
        log = self.output_pane
        instance = view.instances.get(self.selected or "")
        if instance is None:
            self.evidence_pane.update("")
            return
        if log.instance != instance.name:
            log.show_instance(instance.name, instance.output, instance.output_total)
        else:
            log.extend(instance.output, instance.output_total)
        pane = self.evidence_pane
        pane.update(evidence(instance))
        pane.set_class(instance.failure() is not None, "-failed")  # red only for a failure

    # ---- events -------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # tables highlight their first row when filled; only the one the user is in selects
        table = event.data_table
        if not table.has_focus:
            return
        if event.row_key is not None and event.row_key.value:
            self.selected = str(event.row_key.value)
            view = self.view
            if view is not None and drawable(self):
                self._side(view)
        self._keep_visible(table)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self._row_highlighted(event)  # type: ignore[arg-type]
        self.action_open_selected()

    def _keep_visible(self, table: DataTable[object]) -> None:
        """The selected row stays on screen: the batches panel scrolls to the cursor's row
        (after the refresh, when the table has scrolled itself)."""
        if drawable(self) and table.parent is self.batches:
            self.call_after_refresh(self._scroll_to_cursor, table)

    def _scroll_to_cursor(self, table: DataTable[object]) -> None:
        if not drawable(self) or table.parent is not self.batches or table.cursor_row < 0:
            return
        top = table.virtual_region.y  # the table's place in the panel's scrolled content
        above = 1 + (table.header_height if table.show_header else 0)  # border and labels
        y = top + above + table.cursor_row - round(table.scroll_y)
        region = Region(0, top, 1, y - top + 1) if table.cursor_row == 0 else Region(0, y, 1, 1)
        self.batches.scroll_to_region(region, animate=False, immediate=True)

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        """The filter applies as you type."""
        if not event.input.display:
            return
        self.filter_text = event.value.strip()
        self.refresh_view()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        event.input.display = False
        self.refresh_view()
        self._focus_selected()

    def _focus_selected(self) -> None:
        """Focus the table holding the selected instance (or the first), cursor on it."""
        tables = list(self._tables.values())
        home = next((t for t in tables if self.selected in t._shown), None)
        home = home or next(iter(tables), None)
        if home is None:
            return
        home.focus()
        if self.selected in home._shown:
            home.move_cursor(row=list(home._shown).index(self.selected))

    # ---- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        view = self.view
        if action == "continue_wait":
            return bool(self.live and self.running and view and view.wait)
        if action in ("stop", "rollback") and not self.live:
            return False  # a replay acts on nothing: these keys are not offered
        if action == "stop":
            return True if self.running else None
        if action == "rollback":
            if view is None:
                return None
            return True if self.running or view.info.previous_revision is not None else None
        if action in ("replay_speed", "replay_pause"):
            return not self.live
        if action in SHIFT_KEYS:  # offered only while the traffic shift is in a state it acts on
            return shift_key_applies(view, action, self.live and not self.interrupted)
        if action == "open_linked":
            return True if view is not None and (view.rollback_id or view.rolls_back) else None
        return True

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.value = self.filter_text
        box.focus()

    def action_back(self) -> None:
        box = self.filter_box
        if box.display or self.filter_text:
            box.display = False
            with box.prevent(Input.Changed):
                box.value = ""
            self.filter_text = ""
            self.refresh_view()
            self._focus_selected()
            return
        leave(self)

    def action_follow(self) -> None:
        """Follow the selected instance's output: resumes following, never turns it off."""
        pane = self.output_pane
        if pane.follow:
            pane.scroll_end(animate=False)
        else:
            pane.toggle_follow()

    def action_open_selected(self) -> None:
        if self.selected and self.view is not None and self.is_active:
            from tui.screens.instance import InstanceScreen

            self.app.push_screen(
                InstanceScreen(
                    self.deployment_id,
                    self.selected,
                    self.state,
                    self.clock_now,
                    self.navigator.fleet_changed,
                )
            )

    def action_open_linked(self) -> None:
        view = self.view
        target = view and (view.rollback_id or view.rolls_back)
        if target and self.is_active:
            self.navigator.open_deployment(target)

    def action_replay(self) -> None:
        if not self.is_active:
            return
        if not self.live:  # already a replay: start it over in place of this one
            leave(self)
        self.navigator.open_deployment(self.deployment_id, replay=True)

    def action_new_deployment(self) -> None:
        info = self.view.info if self.view is not None else None
        self.navigator.new_deployment((info.application, info.deployment_group) if info else None)

    def action_replay_speed(self, factor: float) -> None:
        reached = self.now()
        self.speed = min(256.0, max(0.25, self.speed * factor))
        self._replay_clock = (reached, time.monotonic(), self._replay_clock[2])
        self.refresh_view()

    def action_replay_pause(self) -> None:
        reached = self.now()
        self.paused = not self.paused
        self._replay_clock = (reached, time.monotonic(), self._replay_clock[2])
        self.refresh_view()

    def describe_stop(self) -> tuple[str, str]:
        """The stop question, from the state now (re-rendered while the dialog is open)."""
        title = f"Stop {self.deployment_id}?"
        view = self.view
        if view is None or not self.running:
            ended = view.status if view is not None else "gone"
            return title, f"{self.deployment_id} already ended ({ended}): there is nothing to stop."
        info = view.info
        running = [i.name for i in view.instances.values() if i.status == Status.IN_PROGRESS]
        waiting = [i.name for i in view.instances.values() if i.status == Status.PENDING]
        auto = info.options.auto_rollback
        rolls_back = auto.enabled and "DEPLOYMENT_STOP_ON_REQUEST" in auto.events
        if rolls_back:
            previous = info.previous_revision
            target = f"revision {previous.short()}" if previous else "the last successful revision"
            after = f"Then a rollback follows: {info.deployment_group} rolls back on " + (
                "DEPLOYMENT_STOP_ON_REQUEST."
                if view.blue
                else f"DEPLOYMENT_STOP_ON_REQUEST, so {target} is deployed again to the "
                "instances this deployment changed."
            )
        else:
            after = (
                f"No rollback follows ({info.deployment_group} does not roll back on "
                "DEPLOYMENT_STOP_ON_REQUEST); press R instead to stop and roll back."
            )
        body = (
            f"The hooks now running on {len(running)} instance(s) ({_names(running)}) are ended — "
            "their whole process groups get SIGTERM, then SIGKILL — and those instances are "
            f"marked Failed. {len(waiting)} instance(s) not started yet ({_names(waiting)}) are "
            f"Skipped. Instances already finished keep what they have.\n\n"
            f"{self._traffic_after_stop(view, rollback=rolls_back)}{after}\n\n"
            "(Live: this text follows the deployment while the question is open.)"
        )
        return title, body

    def _traffic_after_stop(self, view: DeploymentView, *, rollback: bool) -> str:
        """The stop's traffic paragraph and a blank line ("" without traffic control)."""
        text = stop_paragraph(view, rollback=rollback)
        return text + "\n\n" if text else ""

    def action_stop(self) -> None:
        if not self.running or not self.is_active:
            return
        deployment_id = self.deployment_id

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if not self.running:  # it ended as y was pressed: the dialog said so
                self.notify(f"{deployment_id} already ended: nothing stopped")
                return
            self.post_message(
                RunEngineCommand(
                    lambda engine: engine.stop_deployment(deployment_id, None),
                    f"Stopping {deployment_id}",
                )
            )

        self._ask(ConfirmScreen("", "", "Stop", describe=self.describe_stop), answered)

    def describe_continue(self) -> tuple[str, str]:
        """The continue question, from the state now (the wait may end while it is open)."""
        view = self.view
        wait = view.wait if view is not None else None
        if view is None or wait is None:
            return f"Continue {self.deployment_id}?", "It is not waiting any more: nothing to do."
        if wait.wait_type == "READY_WAIT":
            return (
                f"Move traffic to green now? ({self.deployment_id})",
                f"The ready wait ends: traffic moves from blue ({', '.join(view.blue)}) to "
                f"green ({', '.join(view.green)}) in batches of {view.info.config_name}, "
                "green allowed before blue is blocked.",
            )
        return (
            f"End blue now? ({self.deployment_id})",
            f"The termination wait ends: blue ({', '.join(view.blue)}) runs ApplicationStop "
            "(or is kept running, KEEP_ALIVE) and leaves the group. Traffic can no longer "
            "go back to it by a rollback.",
        )

    def action_continue_wait(self) -> None:
        view = self.view
        if view is None or view.wait is None or not self.running or not self.is_active:
            return
        deployment_id, wait_type = self.deployment_id, view.wait.wait_type

        def answered(yes: bool | None) -> None:
            current = self.view
            if not yes or current is None or current.wait is None:
                return
            if current.wait.wait_type != wait_type:  # the wait changed as y was pressed
                self.notify(f"{deployment_id} is no longer in its {wait_type}: nothing done")
                return
            self.post_message(
                RunEngineCommand(
                    lambda engine: engine.continue_deployment(deployment_id, wait_type),
                    f"Continuing {deployment_id} ({wait_type})",
                )
            )

        self._ask(ConfirmScreen("", "", "Continue", describe=self.describe_continue), answered)

    def _ask(self, question: ConfirmScreen, answered: Callable[[bool | None], None]) -> None:
        """Open a live question about this deployment: it follows the deployment's news."""
        self._question = question
        self.app.push_screen(question, answered)

    def describe_rollback(self) -> tuple[str, str]:
        """The rollback question, from the state now: stop and roll back while it runs, roll
        back once it has ended."""
        view = self.view
        if view is None:
            return f"Roll back {self.deployment_id}?", "Its state is not loaded yet."
        info = view.info
        touched = [
            i.name
            for i in view.instances.values()
            if i.status != Status.SKIPPED and i.status != Status.PENDING
        ]
        previous = info.previous_revision
        target = (
            f"revision {previous.short()} {revision_label(previous)}"
            if previous
            else "the group's last successful revision (if any)"
        )
        if self.running:
            traffic = self._traffic_after_stop(view, rollback=True)
            between = f"\n\n{traffic}" if traffic else " "
            then = (
                f"The rollback is a new deployment (of {target})."
                if view.blue
                else f"Then a rollback deployment redeploys {target} to the instances this "
                f"deployment changed by then (now {len(touched)}: {_names(touched)})."
            )
            return (
                f"Stop {info.id} and roll back?",
                f"{info.id} is stopped first (running hooks ended, not-started instances "
                f"Skipped).{between}{then} If the group has no earlier successful revision, "
                "nothing is rolled back and the rollback info says so.\n\n(Live: this text "
                "follows the deployment while the question is open.)",
            )
        if previous is None:
            return (
                f"Roll back {info.id}?",
                f"{info.id} ended ({view.status}) and there is no earlier revision to roll back "
                "to: nothing would be done.",
            )
        instances = sorted(view.instances)
        earlier = (
            f"\n\n{info.id} was already rolled back by {view.rollback_id}"
            + (f" ({view.rollback_message})" if view.rollback_message else "")
            + "; this deploys that revision once more."
            if view.rollback_id
            else ""
        )
        return (
            f"Roll back {info.id}?",
            f"A new deployment redeploys {target} to "
            f"{info.application}/{info.deployment_group} ({_names(instances)}) "
            f"with {info.config_name}. Files {info.id} installed are removed or replaced; "
            f"what its scripts did is not undone.{earlier}"
            + (f"\n\n{rollback_paragraph(view)}" if rollback_paragraph(view) else ""),
        )

    def action_rollback(self) -> None:
        view = self.view
        if view is None or not self.live or not self.is_active:
            return
        if not self.running and view.info.previous_revision is None:
            self.notify("No earlier revision to roll back to", severity="warning")
            return
        deployment_id = self.deployment_id

        def answered(yes: bool | None) -> None:
            # the command is chosen now, from the state the dialog showed when y was pressed
            view = self.view
            if not yes or view is None:
                return
            if self.running:
                command = lambda engine: engine.stop_deployment(deployment_id, True)  # noqa: E731
            elif view.info.previous_revision is not None:
                command = lambda engine: engine.rollback(deployment_id)  # noqa: E731
            else:
                self.notify("No earlier revision to roll back to", severity="warning")
                return
            self.post_message(RunEngineCommand(command, f"Rolling back {deployment_id}"))

        self._ask(ConfirmScreen("", "", "Roll back", describe=self.describe_rollback), answered)

    # ---- replay -------------------------------------------------------------------------

    @work(exclusive=True, group="replay", exit_on_error=False, description="The replay")
    async def run_replay(self) -> None:
        entries = await self.replay_source() if self.replay_source else []
        previous = entries[0].event.time if entries else 0.0
        last_draw = 0.0
        loop = asyncio.get_running_loop()
        for entry in entries:
            # wait out the journal's gap (capped) in small steps, so a pause or a new speed
            # takes effect at once
            left = min(MAX_REPLAY_GAP, max(0.0, entry.event.time - previous))
            reached = previous
            while left > 0.005 or self.paused:
                self._replay_clock = (reached, time.monotonic(), entry.event.time)
                if self.paused:
                    await asyncio.sleep(0.1)
                    continue
                step = min(0.05, left / self.speed)
                await asyncio.sleep(step)
                left -= step * self.speed
                reached += step * self.speed
            previous = entry.event.time
            self._replay_clock = (previous, time.monotonic(), previous)
            self.state.apply(entry.event)
            if loop.time() - last_draw > 0.05:
                self.refresh_view()
                last_draw = loop.time()
        self.refresh_view()
        self.notify(f"Replay of {self.deployment_id} finished")


PROGRESS_STEPS = 1000
_DONE = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED)
# A Server blue/green deployment's instances end together at its very end, so their count says
# nothing until then: its progress is the green install (most of the work), then traffic moved
# to green, then the original (blue) fleet dealt with.
GREEN_INSTALLED, TRAFFIC_MOVED = 0.7, 0.15


def progress_steps(view: DeploymentView) -> int:
    """How far the deployment is, in PROGRESS_STEPS: the share of its instances done, or for
    a Server blue/green one, its phases weighted as GREEN_INSTALLED and TRAFFIC_MOVED say."""
    if not view.green or view.ended is not None:
        done = sum(1 for i in view.instances.values() if i.status in _DONE)
        return round(PROGRESS_STEPS * done / max(1, len(view.instances)))
    moved = view.traffic_on == "Green"
    # in a wait, or once traffic moved, every green instance is installed
    installed = 1.0 if moved or view.wait is not None or view.status == Status.READY else None
    green = sum(
        installed if installed is not None else _install_share(view.instances.get(name))
        for name in view.green
    )
    blue = sum(
        1 for name in view.blue if (i := view.instances.get(name)) is not None and i.status in _DONE
    )
    fraction = GREEN_INSTALLED * green / len(view.green) + (TRAFFIC_MOVED if moved else 0.0)
    fraction += (1 - GREEN_INSTALLED - TRAFFIC_MOVED) * blue / max(1, len(view.blue))
    return round(PROGRESS_STEPS * fraction)


def _install_share(instance: InstanceView | None) -> float:
    """The share of the install's lifecycle events an instance finished."""
    if instance is None:
        return 0.0
    if instance.status in (Status.READY, *_DONE):
        return 1.0
    finished = sum(
        1
        for name in SERVER_IN_PLACE_EVENTS
        if (e := instance.events.get(name)) is not None and e.status in _DONE
    )
    return finished / len(SERVER_IN_PLACE_EVENTS)


def _unbatched(view: DeploymentView) -> str:
    """The title of the instances in no batch: a Lambda or ECS deployment's one target has
    none; a Server deployment's are those not started yet."""
    platform = view.info.compute_platform
    if platform == ComputePlatform.LAMBDA:
        return "function"
    return "service" if platform == ComputePlatform.ECS else "not started"


def _first_interesting(view: DeploymentView) -> str:
    """The instance to show first: a failed one, else a running one, else the first."""
    for wanted in (Status.FAILED, Status.IN_PROGRESS):
        for name, instance in view.instances.items():
            if instance.status == wanted:
                return name
    return next(iter(view.instances))


def evidence(instance: InstanceView) -> Text:
    ssh = instance.host.startswith("ssh:")
    where = instance.host + (f" · {instance.connection}" if instance.connection else "")
    failure = instance.failure()
    if failure is None:
        return Text(
            f"{instance.name}: {instance.status}" + (f"\n{where}" if ssh else ""), style="dim"
        )
    event, diag = failure
    text = Text()
    text.append(f"✖ {instance.name}: {event} failed\n", style="bold red")
    if ssh:
        text.append(f"host        {where}\n")
    text.append(f"error code  {diag.error_code}\n")
    if diag.exit_code is not None:
        text.append(f"exit code   {diag.exit_code}\n")
    if diag.script_name:
        text.append(f"script      {diag.script_name}\n")
    text.append(f"message     {diag.message}\n")
    if diag.log_tail:
        text.append("last output\n", style="bold")
        for line in diag.log_tail.splitlines()[-8:]:
            text.append(f"  {line}\n", style="dim")
    return text
