"""Textual's Log, safe to remove while it measures new lines.

Log sizes new lines in a thread worker that then reaches the app through the widget; a log
removed meanwhile (its screen dismissed at once) has no app to reach, and the worker's error
would end the console. Here a removed log's measurement is dropped; any other failure is
passed up to the App, which says it.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import work
from textual._context import NoActiveAppError
from textual.widgets import Log

from tui.messages import SaysWorkerFailures


class DetachedSafeLog(SaysWorkerFailures, Log):
    @work(thread=True, exit_on_error=False)
    def _update_size(self, updates: int, lines: list[str]) -> None:
        if not lines:
            return
        width = max(cell_len(self._process_line(line)) for line in lines)
        try:
            app = self.app
        except NoActiveAppError:
            return  # removed while measuring: nothing left to size
        app.call_from_thread(self._update_maximum_width, updates, width)
