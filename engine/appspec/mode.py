"""Permission `mode` values, checked exactly as the reference agent does
(docs/codedeploy-agent.md#permission-mode).

The value is stringified, left-padded with `0` to three characters, and must then be at most four
characters, each an octal digit. The resulting string is applied with `chmod(int(mode, 8))`.
"""

from __future__ import annotations

from engine.appspec.report import InvalidValue
from engine.appspec.ruby import to_s

MODE_HINT = 'write the mode as a quoted octal string, e.g. mode: "0644" or mode: "755"'


def normalize_mode(value: object) -> str:
    """The reference's mode string for a YAML value, or InvalidValue."""
    text = to_s(value)
    padded = text.rjust(3, "0")
    if len(padded) > 4:
        raise InvalidValue(
            f"mode must be 1 to 4 octal digits (got {padded!r}, {len(padded)} characters)",
            MODE_HINT,
        )
    for char in padded:
        if char not in "01234567":
            raise InvalidValue(
                f"mode {padded!r} contains {char!r}, which is not an octal digit 0-7", MODE_HINT
            )
    return padded


def mode_bits(mode: str) -> int:
    """The permission bits a valid mode string applies."""
    return int(mode, 8)


def describe_bits(bits: int) -> str:
    """`ls -l` style rendering of permission bits, e.g. 0o4755 -> `rwsr-xr-x`."""
    out = []
    for shift, special, special_char in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        triple = (bits >> shift) & 7
        execute = "x" if triple & 1 else "-"
        if bits & special:
            execute = special_char if triple & 1 else special_char.upper()
        out.append(("r" if triple & 4 else "-") + ("w" if triple & 2 else "-") + execute)
    return "".join(out)
