"""Text from hooks made safe for a terminal: control characters shown, never obeyed.

A hook's output (and the evidence kept from it) may hold escape sequences that would recolour,
clear or retitle the operator's terminal, move its cursor, or hide text. Everything deploydeck
shows of it goes through `printable`: plain text, tabs and newlines are kept; every other
control character is shown as a visible escape such as `\\x1b`, so `ESC [31m` reads `\\x1b[31m`.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# controls that reorder or hide text on screen: bidirectional overrides and isolates.
_CONTROLS = (
    [c for c in range(0x20) if c not in (0x09, 0x0A)]
    + list(range(0x7F, 0xA0))
    + [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_VISIBLE = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS}
_ANY_CONTROL = re.compile("[" + "".join(re.escape(chr(c)) for c in _CONTROLS) + "]")


def printable(text: str) -> str:
    """`text` with each control character but tab and newline shown as a visible escape. A
    carriage return ending a line (Windows line ends) is dropped rather than shown."""
    if not _ANY_CONTROL.search(text):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").removesuffix("\r")
    return text.translate(_VISIBLE)
