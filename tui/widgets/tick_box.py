"""A checkbox whose mark shows its state without colour: `▐✔▌` on, `▐ ▌` off."""

from __future__ import annotations

from textual.widgets import Checkbox


class TickBox(Checkbox):
    """Textual's Checkbox draws the same `X` either way and tells on from off by colour alone."""

    def on_mount(self) -> None:
        self._show_mark()

    def watch_value(self) -> None:
        super().watch_value()  # the `-on` class and the Changed message
        self._show_mark()

    def _show_mark(self) -> None:
        self.BUTTON_INNER = "✔" if self.value else " "
        self.refresh()
