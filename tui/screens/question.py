"""The frame every question shares: a centred box with a bold title, a body that scrolls when
long (the answers stay in view), and a row of answer buttons below."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, ScreenResultType
from textual.widgets import Button, Static


class QuestionScreen(ModalScreen[ScreenResultType]):
    DEFAULT_CSS = """
    QuestionScreen { align: center middle; }
    QuestionScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%; border: thick $warning;
        background: $surface; padding: 0 1;
    }
    QuestionScreen #dialog-scroll { height: auto; max-height: 14; }
    QuestionScreen #dialog-title { text-style: bold; margin-bottom: 1; }
    QuestionScreen #dialog-body { margin-bottom: 1; }
    QuestionScreen Horizontal { height: auto; align-horizontal: right; }
    QuestionScreen Button { margin-left: 1; }
    """

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        # made here, not found by query: they exist before compose and after dismiss
        self._title = Static(title, id="dialog-title")
        self._body = Static(body, id="dialog-body")

    def answers(self) -> Iterable[Button]:
        """The answer buttons, in order."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield self._title
            with VerticalScroll(id="dialog-scroll"):
                yield self._body
            with Horizontal():
                yield from self.answers()
