"""Every key, generated from the registry, with the status glyph legend."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.actions import ACTIONS, APP, DASHBOARD, DEPLOYMENT
from tui.screens.safe import leave
from tui.widgets.glyphs import STATUS_STYLES

# j and k scroll like the arrows
VI_SCROLL = [
    Binding("j", "scroll_keys(1)", "Down", show=False),
    Binding("k", "scroll_keys(-1)", "Up", show=False),
]

SCOPE_TITLES = {APP: "Everywhere", DASHBOARD: "Dashboard", DEPLOYMENT: "Deployment screen"}


def _other_screens() -> list[tuple[str, list[tuple[str, str]]]]:
    """Keys of the other screens, read from their own bindings (so help cannot drift)."""
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.instance import InstanceScreen
    from tui.screens.new_deployment import NewDeploymentScreen

    def rows(bindings: list[BindingType]) -> list[tuple[str, str]]:
        shown = {"escape": "esc"}
        listed = [b for b in bindings if isinstance(b, Binding)]
        if len(listed) != len(bindings):  # pragma: no cover - our screens declare Binding objects
            raise TypeError("help lists screens whose BINDINGS are all Binding objects")
        return [
            (b.key_display or shown.get(b.key, b.key), b.tooltip or b.description) for b in listed
        ]

    return [
        ("Instance detail", rows(InstanceScreen.BINDINGS)),
        (
            "New deployment form",
            [
                ("tab", "Next field"),
                ("enter", "Open a list, or press the focused button"),
                *rows(NewDeploymentScreen.BINDINGS),
            ],
        ),
        (
            "Questions (stop, roll back, quit)",
            [*rows(ConfirmScreen.BINDINGS), ("enter", "The focused answer: No unless you move")],
        ),
    ]


def keys_table(screen: Screen[Any] | None = None) -> Table:
    """Every key; with the screen help was opened on, its keys that do nothing now are dimmed
    and marked, as the footer shows them."""
    table = Table(box=None, expand=True, show_header=False, pad_edge=False)
    table.add_column("key", width=8, style="bold")
    table.add_column("what")
    check = getattr(screen, "check_action", None)
    for scope, title in SCOPE_TITLES.items():
        table.add_row("", Text(title, style="bold underline"))
        for action in ACTIONS:
            if scope not in action.scopes:
                continue
            name = action.action.split("(")[0]
            idle = (
                scope != APP
                and check is not None
                and hasattr(screen, f"action_{name}")
                and check(name, ()) is not True
            )
            what = Text(action.help + ("  (not now)" if idle else ""), style="dim" if idle else "")
            table.add_row(action.key_display or action.key, what)
        table.add_row("", "")
    for title, rows in _other_screens():
        table.add_row("", Text(title, style="bold underline"))
        for key, description in rows:
            table.add_row(key, description)
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
        width: 96; max-width: 100%; height: 90%; max-height: 100%; border: thick $primary;
        background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close help"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
        *VI_SCROLL,
    ]

    def __init__(self, below: Screen[Any] | None = None) -> None:
        super().__init__()
        self.below = below
        self.keys = VerticalScroll(
            Static(Text("deploydeck keys", style="bold")),
            Static(legend()),
            Static(keys_table(below)),
            Static(
                "Destructive keys (S, R) always ask first, and No is the default. Lifecycle "
                "event columns: AppStop ApplicationStop, Download DownloadBundle, BeforeInst "
                "BeforeInstall, AfterInst AfterInstall, AppStart ApplicationStart, Validate "
                "ValidateService."
            ),
        )

    def action_close(self) -> None:
        leave(self)

    def action_scroll_keys(self, lines: int) -> None:
        self.keys.scroll_relative(y=lines, animate=False)

    def compose(self) -> ComposeResult:
        yield self.keys

    def on_mount(self) -> None:
        self.keys.focus()
