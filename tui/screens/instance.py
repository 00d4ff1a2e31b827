"""One instance of a deployment: every lifecycle event with its times and diagnostics, and the
whole captured output."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.signal import Signal
from textual.widgets import Static

from tui.messages import FleetChange
from tui.render.glyphs import duration, short_time, status
from tui.render.state import FleetState
from tui.screens.deployment import evidence
from tui.screens.safe import drawable, leave
from tui.widgets.footer import KeysFooter
from tui.widgets.log_pane import LogPane


class InstanceScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the deployment"),
        Binding("f", "follow", "Follow", tooltip="Follow the output (scrolling up pauses it)"),
    ]

    def __init__(
        self,
        deployment_id: str,
        instance: str,
        state: FleetState,
        now: Callable[[], float],
        changes: Signal[FleetChange],
    ) -> None:
        super().__init__()
        self.changes = changes  # the App's news, handed down
        self.clock_now = now
        self.deployment_id = deployment_id
        self.instance = instance
        self.state = state
        # made here, not found by query: they exist before compose and after dismiss
        self.header_text = Static(id="instance-header")
        self.events_text = Static(id="instance-events")
        self.evidence_text = Static(id="instance-evidence")
        self.output_pane = LogPane(id="instance-log")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield self.header_text
            yield self.events_text
            yield self.evidence_text
            yield self.output_pane
        yield KeysFooter()

    def on_mount(self) -> None:
        self.refresh_view()
        self.changes.subscribe(self, self._fleet_changed, immediate=True)

    def _fleet_changed(self, change: FleetChange) -> None:
        if self.deployment_id in change.changed or (change.tick and self.is_running_view()):
            self.refresh_view()

    def is_running_view(self) -> bool:
        view = self.state.deployments.get(self.deployment_id)
        return view is not None and view.ended is None

    def refresh_view(self) -> None:
        view = self.state.deployments.get(self.deployment_id)
        instance = view.instances.get(self.instance) if view else None
        if view is None or instance is None or not drawable(self):
            return
        now = view.clock.now(view, self.clock_now())
        scale = view.info.options.time_scale
        scaled = f"  ·  time x{scale:g}" if scale != 1.0 else ""
        # the status first, the long host last: a narrow terminal cuts only the host
        self.header_text.update(
            Text.assemble(
                (f"{instance.name}  ", "bold"),
                status(instance.status),
                f"  ·  {self.deployment_id}{scaled}  ·  batch {instance.batch or '-'}  ·  "
                f"{instance.host}",
            )
        )
        # one line per event: long notes are cut (the evidence below has the whole message)
        table = Table(box=None, pad_edge=False)
        fixed = (("event", 16), ("status", 13), ("started", 14), ("took", 6))
        for column, width in fixed:
            table.add_column(column, no_wrap=True, width=width)
        table.add_column("error", no_wrap=True)
        table.add_column("script", no_wrap=True)
        width = self.events_text.size.width or self.app.size.width - 2
        left = max(12, width - sum(w for _, w in fixed) - 2 * len(fixed) - 2)
        script_width = min(24, left // 3)
        for name, event in instance.events.items():
            took = duration((event.ended or now) - event.started) if event.started else ""
            diag = event.diagnostics
            table.add_row(
                name,
                status(event.status),
                short_time(event.started),
                took,
                _cut(diag.error_code if diag else (event.note or ""), left - script_width),
                _cut(diag.script_name if diag and diag.script_name else "", script_width),
            )
        self.events_text.update(table)
        self.evidence_text.update(evidence(instance))
        log = self.output_pane
        if log.instance != instance.name:
            log.show_instance(instance.name, instance.output, instance.output_total)
        else:
            log.extend(instance.output, instance.output_total)

    def action_back(self) -> None:
        leave(self)

    def action_follow(self) -> None:
        """Follow the output: resumes following, never turns it off."""
        if self.output_pane.follow:
            self.output_pane.scroll_end(animate=False)
        else:
            self.output_pane.toggle_follow()


def _cut(text: str, width: int) -> str:
    """`text` within `width` cells, ending in … when cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
