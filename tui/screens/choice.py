"""A question with several answers, each on a key (quit with a running deployment, recovery)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.widgets.button import ButtonVariant

from tui.screens.safe import leave


@dataclass(frozen=True)
class Choice:
    key: str
    label: str
    value: str
    variant: ButtonVariant = "default"


class ChoiceScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%; border: thick $warning;
        background: $surface; padding: 0 1;
    }
    ChoiceScreen #dialog-scroll { height: auto; max-height: 14; }
    ChoiceScreen #dialog-title { text-style: bold; margin-bottom: 1; }
    ChoiceScreen #dialog-body { margin-bottom: 1; }
    ChoiceScreen Horizontal { height: auto; align-horizontal: right; }
    ChoiceScreen Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "choose('')", "Cancel", show=False)]

    def __init__(self, title: str, body: str, choices: list[Choice], default: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.choices = choices
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="dialog-title")
            with VerticalScroll(id="dialog-scroll"):  # a long body scrolls, the answers stay
                yield Static(self.body, id="dialog-body")
            with Horizontal():
                for choice in self.choices:
                    yield Button(
                        f"{choice.label} ({choice.key})",
                        id=f"choice-{choice.value}",
                        variant=choice.variant,
                    )

    def on_mount(self) -> None:
        # query, not query_one: the app may be closing while this dialog mounts
        for button in self.query(f"#choice-{self.default}").results(Button):
            button.focus()

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                leave(self, choice.value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        leave(self, (event.button.id or "").removeprefix("choice-") or None)

    def action_choose(self, value: str) -> None:
        leave(self, value or None)
