"""A yes/no question for destructive actions: defaults to No; y confirms, n or esc cancels.

A question about a running deployment is live: `describe` renders its title and body from the
state now; the app re-renders it as events arrive, and a yes given just as the text changed
shows the new text and asks again, so what is confirmed is what the dialog says.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.screens.safe import drawable, leave

Describe = Callable[[], tuple[str, str]]


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%; border: thick $warning;
        background: $surface; padding: 0 1;
    }
    ConfirmScreen #dialog-scroll { height: auto; max-height: 14; }
    ConfirmScreen #dialog-title { text-style: bold; margin-bottom: 1; }
    ConfirmScreen #dialog-body { margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; }
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
        super().__init__()
        self.describe = describe
        self.deployment_id = deployment_id  # whose events re-render a live question
        if describe is not None:
            title, body = describe()
        self.title_text = title
        self.body = body
        self.yes_label = yes_label
        self._title = Static(title, id="dialog-title")
        self._body = Static(body, id="dialog-body")
        self._no = Button("No (n)", id="no", variant="primary")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield self._title
            with VerticalScroll(id="dialog-scroll"):
                yield self._body
            with Horizontal():
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
