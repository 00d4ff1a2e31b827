"""A yes/no question for destructive actions: defaults to No; y confirms, n or esc cancels.

A question about a running deployment is live: `describe` renders its title and body from the
state now; the screen that asked re-renders it as events arrive, and a yes given just as the
text changed shows the new text and asks again, so what is confirmed is what the dialog says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.binding import Binding
from textual.widgets import Button

from tui.screens.question import QuestionScreen
from tui.screens.safe import drawable, leave

Describe = Callable[[], tuple[str, str]]


class ConfirmScreen(QuestionScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen > Vertical { width: 76; }
    ConfirmScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="Confirm"),
        Binding("n", "answer(False)", "No", tooltip="Cancel"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(
        self,
        title: str,
        body: str,
        yes_label: str = "Yes",
        *,
        describe: Describe | None = None,
        deployment_id: str | None = None,
    ) -> None:
        if describe is not None:
            title, body = describe()
        super().__init__(title, body)
        self.describe = describe
        self.deployment_id = deployment_id  # whose deployment a live question follows
        self.yes_label = yes_label
        self._no = Button("No (n)", id="no", variant="primary")

    def answers(self) -> Iterable[Button]:
        yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
        yield self._no

    def on_mount(self) -> None:
        self._no.focus()

    def refresh_text(self) -> bool:
        """Re-render a live question from the state now; True if its text changed."""
        if self.describe is None:
            return False
        title, body = self.describe()
        if (title, body) == (self.title_text, self.body):
            return False
        self.title_text, self.body = title, body
        if drawable(self):
            self._title.update(title)
            self._body.update(body)
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        if answer and self.refresh_text():
            self.notify(
                "What this stops changed just now: read it again; y confirms what it says now",
                severity="warning",
            )
            return
        leave(self, answer)
