"""Textual's Select, with a list that survives page keys pressed before it is first drawn.

Textual 8.2.8's option list looks up the highlighted option's line, which exists only once the
list has been laid out: pagedown or pageup in the instant a Select opens raises KeyError and
ends the app. Here such a key does nothing until the list is drawn.
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.widgets import Select
from textual.widgets._select import SelectCurrent, SelectOverlay


class _Overlay(SelectOverlay):
    def _move_page(self, direction: Literal[-1, 1]) -> None:
        if (self.highlighted or 0) not in self._index_to_line:
            return  # not laid out yet: no pages to move through
        super()._move_page(direction)


class SafeSelect(Select[str]):
    def compose(self) -> ComposeResult:
        yield SelectCurrent(self.prompt)
        yield _Overlay(type_to_search=self._type_to_search).data_bind(compact=Select.compact)
