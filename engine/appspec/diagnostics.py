"""Diagnostics: what is wrong (or suspicious) in an appspec, where, and what to write instead.

Parsers never raise on bad input: they return an `AppSpecResult` holding the parsed appspec
(None when there is any error) and every diagnostic found, errors and warnings alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

Severity = Literal["error", "warning"]

T = TypeVar("T")


@dataclass(frozen=True)
class Diagnostic:
    """One finding. `line`/`column` are 1-based; `key` is a readable path such as
    `hooks.ApplicationStart[0].timeout`; `value` is the offending value as written (None when
    the problem is a missing value); `hint` says what to write instead."""

    severity: Severity
    file: str
    line: int
    column: int
    key: str
    value: str | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: {self.severity}: "
        text = f"{self.key}: {self.message}" if self.key else self.message
        return where + (f"{text}; {self.hint}" if self.hint else text)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def errors_of(diagnostics: tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    return tuple(d for d in diagnostics if d.is_error)


def warnings_of(diagnostics: tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    return tuple(d for d in diagnostics if not d.is_error)


class Findings:
    """`errors` and `warnings` of a class that holds `diagnostics` (results and exceptions)."""

    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return errors_of(self.diagnostics)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return warnings_of(self.diagnostics)


class AppSpecError(Findings, Exception):
    """Raised by `AppSpecResult.unwrap()`; carries every diagnostic of the failed parse."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        self.diagnostics = diagnostics
        super().__init__(str(self))

    def __str__(self) -> str:
        errors = self.errors
        if not errors:
            return "invalid appspec"
        head = f"invalid appspec ({len(errors)} error{'s' if len(errors) != 1 else ''}):"
        return "\n".join([head, *(str(d) for d in errors)])


@dataclass(frozen=True)
class AppSpecResult(Findings, Generic[T]):
    """The outcome of a parse: the appspec (None when there are errors) and all diagnostics."""

    appspec: T | None
    diagnostics: tuple[Diagnostic, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.appspec is not None and not self.errors

    def unwrap(self) -> T:
        """The appspec, or AppSpecError listing every error."""
        if self.appspec is None or self.errors:
            raise AppSpecError(self.diagnostics)
        return self.appspec
