"""A DataTable kept in step with a dict of rows, updated cell by cell (dolphie's diffing)."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

# j and k move like the arrows in every list (the vi keys operators expect)
VI_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
]


def cursor_row_key(table: DataTable[object]) -> str | None:
    """The key of the row under the cursor, or None for an empty table."""
    if table.row_count == 0:
        return None
    try:
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    except Exception:
        return None


class KeyedTable(DataTable[object]):
    """A DataTable whose rows are replaced by key, cell by cell, only where they changed."""

    BINDINGS = VI_KEYS

    def __init__(self, columns: list[tuple[str, int | None]], **kw) -> None:
        super().__init__(cursor_type="row", **kw)
        self.spec = columns
        self._rows: dict[str, tuple] = {}
        for label, width in self.spec:
            self.add_column(label, width=width, key=label)

    def sync(self, rows: dict[str, tuple]) -> None:
        """Make the table show exactly `rows` (key -> cells) in their order: cells are updated
        in place while the keys stay the same; a new order is a clear and re-add (cheap here)."""
        if list(rows) != list(self._rows):
            cursor = self.selected_key
            self.clear()
            self._rows = {}
            for key, cells in rows.items():
                self.add_row(*cells, key=key)
                self._rows[key] = cells
            if cursor in rows:
                self.move_cursor(row=list(rows).index(cursor))
            return
        labels = [label for label, _ in self.spec]
        for key, cells in rows.items():
            old = self._rows[key]
            for label, before, after in zip(labels, old, cells, strict=True):
                if str(before) != str(after):
                    self.update_cell(key, label, after)
            self._rows[key] = cells

    @property
    def selected_key(self) -> str | None:
        return cursor_row_key(self)
