"""One instance of a deployment: every lifecycle event with its times and diagnostics, and the
whole captured output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from tui.render.state import FleetState
from tui.screens.deployment import evidence
from tui.screens.safe import drawable, leave
from tui.widgets.footer import KeysFooter
from tui.widgets.glyphs import clock_time, duration, status
from tui.widgets.log_pane import LogPane

if TYPE_CHECKING:
    from tui.app import DeployDeckApp


class InstanceScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the deployment"),
        Binding("f", "follow", "Follow", tooltip="Follow the output (scrolling up pauses it)"),
    ]

    def __init__(self, deployment_id: str, instance: str, state: FleetState) -> None:
        super().__init__()
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

    def is_running_view(self) -> bool:
        view = self.state.deployments.get(self.deployment_id)
        return view is not None and view.ended is None

    def refresh_view(self) -> None:
        view = self.state.deployments.get(self.deployment_id)
        instance = view.instances.get(self.instance) if view else None
        if view is None or instance is None or not drawable(self):
            return
        app: DeployDeckApp = self.app  # type: ignore[assignment]
        now = app.now()
        self.header_text.update(
            Text.assemble(
                (f"{instance.name}  ", "bold"),
                f"{instance.host}  ·  {self.deployment_id}  ·  batch {instance.batch or '-'}  ·  ",
                status(instance.status),
            )
        )
        table = Table(box=None, pad_edge=False)
        for column in ("event", "status", "started", "took", "error", "script"):
            table.add_column(column)
        for name, event in instance.events.items():
            took = duration((event.ended or now) - event.started) if event.started else ""
            diag = event.diagnostics
            table.add_row(
                name,
                status(event.status),
                clock_time(event.started),
                took,
                diag.error_code if diag else (event.note or ""),
                diag.script_name if diag and diag.script_name else "",
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
