"""Every key, generated from the registry, with the status glyph legend."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.actions import ACTIONS, APP, DASHBOARD, DEPLOYMENT
from tui.widgets.glyphs import STATUS_STYLES

SCOPE_TITLES = {APP: "Everywhere", DASHBOARD: "Dashboard", DEPLOYMENT: "Deployment screen"}


def keys_table() -> Table:
    table = Table(box=None, expand=True, show_header=False, pad_edge=False)
    table.add_column("key", width=8, style="bold")
    table.add_column("what")
    for scope, title in SCOPE_TITLES.items():
        table.add_row("", Text(title, style="bold underline"))
        for action in ACTIONS:
            if scope in action.scopes:
                table.add_row(action.key_display or action.key, action.help)
        table.add_row("", "")
    table.add_row("", Text("Also", style="bold underline"))
    table.add_row("ctrl+p", "Command palette")
    table.add_row("tab", "Move between panels")
    table.add_row("ctrl+q", "Quit at once (running deployments carry on in their own process)")
    return table


def legend() -> Text:
    text = Text("Statuses: ", style="bold")
    for name in ("Succeeded", "Failed", "InProgress", "Pending", "Skipped", "Stopped", "Unknown"):
        glyph, word, style = STATUS_STYLES[name]
        text.append(f"{glyph} {name} ({word})  ", style=style)
    return text


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 96; height: 90%; border: thick $primary; background: $surface; padding: 1 2;
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Close", tooltip="Close help"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("deploydeck keys", style="bold"))
            yield Static(legend())
            yield Static(keys_table())
            yield Static(
                "Destructive keys (S, R) always ask first, and No is the default. Lifecycle "
                "event columns: AppStop ApplicationStop, Download DownloadBundle, BeforeInst "
                "BeforeInstall, AfterInst AfterInstall, AppStart ApplicationStart, Validate "
                "ValidateService."
            )
