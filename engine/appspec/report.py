"""Collects diagnostics while an appspec is checked, so every problem is reported at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from engine.appspec.diagnostics import Diagnostic, Severity

if TYPE_CHECKING:
    from engine.appspec.document import Node


class _FromNode:
    """Sentinel: take the diagnostic's `value` from the node it points at."""


FROM_NODE: Final = _FromNode()


_SHOWN_LIMIT = 80


def key_path(parent: str, key: str | int) -> str:
    """`hooks` + `ApplicationStart` -> `hooks.ApplicationStart`; `files` + 0 -> `files[0]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    key = key if key else "''"  # an empty key still needs a visible name
    return f"{parent}.{key}" if parent else key


def shown(node: Node | None) -> str | None:
    """A node's value as written, for messages; None for a missing node."""
    if node is None:
        return None
    if node.is_scalar and not node.is_null:
        text = node.text
        return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 3] + "..."
    return node.render(_SHOWN_LIMIT)


class Reporter:
    """Diagnostics for one file, in the order found."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def child(self) -> Reporter:
        return Reporter(self.file)

    def extend(self, other: Reporter) -> None:
        for diagnostic in other.items:
            self._append(diagnostic)

    def _append(self, diagnostic: Diagnostic) -> None:
        # A value looked up twice must not be reported twice.
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self.items.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def error_count(self) -> int:
        return sum(1 for d in self.items if d.is_error)

    def diagnostics(self) -> tuple[Diagnostic, ...]:
        # Stable order by position: easier to read and to act on top to bottom.
        return tuple(sorted(self.items, key=lambda d: (d.line, d.column)))

    def add_at(
        self,
        severity: Severity,
        line: int,
        column: int,
        key: str,
        message: str,
        value: str | None,
        hint: str = "",
    ) -> None:
        self._append(Diagnostic(severity, self.file, line, column, key, value, message, hint))

    def error_at(
        self, line: int, column: int, key: str, message: str, value: str | None, hint: str = ""
    ) -> None:
        self.add_at("error", line, column, key, message, value, hint)

    def warning_at(
        self, line: int, column: int, key: str, message: str, value: str | None, hint: str = ""
    ) -> None:
        self.add_at("warning", line, column, key, message, value, hint)

    def error(
        self,
        node: Node,
        key: str,
        message: str,
        hint: str = "",
        *,
        value: str | _FromNode | None = FROM_NODE,
    ) -> None:
        """An error located at `node`; `value` defaults to the node as written."""
        self._add("error", node, key, message, hint, value)

    def warning(
        self,
        node: Node,
        key: str,
        message: str,
        hint: str = "",
        *,
        value: str | _FromNode | None = FROM_NODE,
    ) -> None:
        self._add("warning", node, key, message, hint, value)

    def _add(
        self,
        severity: Severity,
        node: Node,
        key: str,
        message: str,
        hint: str,
        value: str | _FromNode | None,
    ) -> None:
        written = shown(node) if isinstance(value, _FromNode) else value
        self.add_at(severity, node.line, node.column, key, message, written, hint)


class InvalidValue(ValueError):
    """Raised by the pure value checkers (mode, ACL, SELinux range); the caller turns it into a
    diagnostic at the value's position."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
