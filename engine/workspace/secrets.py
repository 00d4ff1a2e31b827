"""Environment values for hooks, some of them secret (ARCHITECTURE.md invariant 9).

A secret's text lives only in `EnvValue.value`: its repr and str show `***`, the loader removes
it from every diagnostic, and `redact_text` masks it in any text bound for a log or the screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.host.logs import MASK, Redactor


@dataclass(frozen=True)
class EnvValue:
    """One hook variable. `from_env` names the variable it was read from at load time."""

    value: str
    secret: bool = False
    from_env: str | None = None

    def __repr__(self) -> str:
        shown = MASK if self.secret else repr(self.value)
        source = f", from_env={self.from_env!r}" if self.from_env else ""
        return f"EnvValue(value={shown}, secret={self.secret}{source})"

    def __str__(self) -> str:
        return MASK if self.secret else self.value


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (and of each long line of a multi-line one)
    replaced by `***`. Longer texts go first, so a secret that contains another is masked whole."""
    return Redactor(secrets)(text)
