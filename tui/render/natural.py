"""Natural order for names with numbers: web-2 before web-10."""

from __future__ import annotations

import re

_PARTS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key comparing digit runs as numbers and the rest as text (case-insensitive)."""
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part.lower())
        for part in _PARTS.split(name)
        if part
    )
