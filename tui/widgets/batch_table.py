"""One batch of a deployment: a keyed table, one row per instance, one column per event.

Rows are keyed by instance name and updated cell by cell (dolphie's diffing); cells are
glyph, short word and elapsed time, at a fixed width so updates never reflow the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.widgets import DataTable

from tui.render.state import InstanceView
from tui.widgets.glyphs import EVENT_ABBREVIATIONS, short_status, status
from tui.widgets.keyed_table import VI_KEYS, cursor_row_key

EVENT_WIDTH = 11
NAME_WIDTH = 16
STATUS_WIDTH = 13


class BatchTable(DataTable[object]):
    """Instances of one batch (or those not started yet) and their lifecycle events."""

    DEFAULT_CSS = """
    BatchTable { height: auto; max-height: 24; margin-bottom: 1; }
    """
    BINDINGS = VI_KEYS

    def __init__(
        self, batch: int | None, lifecycle: tuple[str, ...], now: Callable[[], float], **kw
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.batch_number = batch  # not `batch`: that is Widget.batch(), Textual's update lock
        self.lifecycle = lifecycle
        self.now = now
        self._shown: dict[str, tuple] = {}
        self.add_column("instance", width=NAME_WIDTH, key="instance")
        self.add_column("status", width=STATUS_WIDTH, key="status")
        for event in self.lifecycle:
            self.add_column(
                EVENT_ABBREVIATIONS.get(event, event[:EVENT_WIDTH]), width=EVENT_WIDTH, key=event
            )

    def cells(self, instance: InstanceView) -> tuple:
        now = self.now()
        row: list[object] = [instance.name, status(instance.status)]
        for event in self.lifecycle:
            view = instance.events.get(event)
            if view is None or view.started is None:
                row.append(short_status(view.status if view else "Pending"))
            elif view.ended is None:
                # whole seconds while running: the cell changes once a second, not every flush
                row.append(short_status(view.status, float(int(now - view.started))))
            else:
                row.append(short_status(view.status, view.ended - view.started))
        return tuple(row)

    def show(self, instances: Iterable[InstanceView]) -> None:
        """Add missing rows, update changed cells; rows not wanted now are removed. Rows keep
        the order given: a row coming back (a filter cleared) goes back to its place."""
        wanted = {}
        for instance in instances:
            wanted[instance.name] = self.cells(instance)
        for name in [n for n in self._shown if n not in wanted]:
            self.remove_row(name)
            del self._shown[name]
        kept = [n for n in wanted if n in self._shown]
        if kept != list(self._shown) or list(wanted)[: len(kept)] != kept:
            # a row must go between others: the table cannot insert, so rebuild it in order
            cursor = self.selected_instance
            self.clear()
            self._shown = {}
            for name, cells in wanted.items():
                self.add_row(*cells, key=name)
                self._shown[name] = cells
            if cursor in wanted:
                self.move_cursor(row=list(wanted).index(cursor))
            return
        keys = ["instance", "status", *self.lifecycle]
        for name, cells in wanted.items():
            old = self._shown.get(name)
            if old is None:
                self.add_row(*cells, key=name)
            else:
                for key, before, after in zip(keys, old, cells, strict=True):
                    if str(before) != str(after):
                        self.update_cell(name, key, after)
            self._shown[name] = cells

    @property
    def selected_instance(self) -> str | None:
        return cursor_row_key(self)
