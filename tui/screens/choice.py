"""A question with several answers, each on a key (quit with a running deployment, recovery)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.widgets import Button
from textual.widgets.button import ButtonVariant

from tui.screens.question import QuestionScreen
from tui.screens.safe import leave


@dataclass(frozen=True)
class Choice:
    key: str
    label: str
    value: str
    variant: ButtonVariant = "default"


class ChoiceScreen(QuestionScreen[str | None]):
    BINDINGS = [Binding("escape", "choose('')", "Cancel", show=False)]

    def __init__(self, title: str, body: str, choices: list[Choice], default: str) -> None:
        super().__init__(title, body)
        self.choices = choices
        self.default = default

    def answers(self) -> Iterable[Button]:
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
