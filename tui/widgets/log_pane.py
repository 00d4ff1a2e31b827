"""An instance's hook output, live: a bounded log that follows new lines until you scroll up.

Following pauses when the view is scrolled away from the end (toolong's tail semantics) and
the title counts the lines that arrived meanwhile; `f` or scrolling to the end resumes.
"""

from __future__ import annotations

from tui.render.terminal_text import printable
from tui.widgets.detached_log import DetachedSafeLog

MAX_LINES = 2000


class LogPane(DetachedSafeLog):
    DEFAULT_CSS = """
    LogPane {
        border: round $primary-darken-1; height: 1fr; min-height: 6;
        scrollbar-size-horizontal: 0;
    }
    """

    def __init__(self, **kw) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, **kw)
        self.follow = True
        self.instance: str | None = None
        self._written = 0
        self._unseen = 0
        self.border_title = "output"

    def show_instance(self, instance: str | None, lines: list[str], total: int) -> None:
        """Switch to another instance's output (or none)."""
        self.instance = instance
        self.clear()
        self._written = 0
        self._unseen = 0
        self.follow = True
        self.extend(lines, total)

    def extend(self, lines: list[str], total: int) -> None:
        """Append what arrived since the last call: `lines` are the newest of `total` lines."""
        if self.follow and self._written and not self.is_vertical_scroll_end:
            self.follow = False  # the user scrolled up: stop following
        elif not self.follow and self._unseen and self.is_vertical_scroll_end:
            self.follow = True  # the user scrolled back to the end: follow again
            self._unseen = 0
        count = min(total - self._written, len(lines))
        self._written = total
        if count <= 0:
            self._title()
            return
        self.auto_scroll = self.follow
        self.write_lines([printable(line) for line in lines[-count:]])
        if not self.follow:
            self._unseen += count
        self._title()

    def toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._unseen = 0
            self.scroll_end(animate=False)
        self._title()

    def _title(self) -> None:
        who = self.instance or "no instance selected"
        state = "following" if self.follow else f"paused, {self._unseen} new lines (f to follow)"
        self.border_title = f"output · {who} · {state}"
