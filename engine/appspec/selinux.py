"""SELinux `context` of a permission: its MLS/MCS range grammar, as the reference reads it
(docs/codedeploy-agent.md#permission-selinux-context).

Range: `s<N>[-s<M>][:<cat>[,<cat>...]]`, `<cat>` = `c<K>` or `c<K>.c<L>`, K and L at most 1023,
M >= N, no category twice once ranges are expanded. A context without a range is accepted (the
reference crashes at Install on it; deploydeck simply passes no `-r` to semanage).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from engine.appspec.report import InvalidValue
from engine.appspec.ruby import MAX_DIGITS

_RANGE_FORMS = "write e.g. range: s0, s0-s0:c0.c1023 or s0:c1,c3.c5"
_DIGITS = frozenset("0123456789")
MAX_CATEGORY = 1023


@dataclass(frozen=True)
class SelinuxRange:
    """A parsed range; `categories` is None when no `:` part was given (sorted, expanded)."""

    low: int
    high: int
    categories: tuple[int, ...] | None = None

    @property
    def canonical(self) -> str:
        """The reference's `get_range` form: consecutive categories folded into `cA.cB`."""
        text = f"s{self.low}" + (f"-s{self.high}" if self.high != self.low else "")
        if self.categories is None:
            return text
        runs: list[str] = []
        cats = self.categories
        i = 0
        while i < len(cats):
            j = i
            while j + 1 < len(cats) and cats[j + 1] == cats[j] + 1:
                j += 1
            runs.append(f"c{cats[i]}" if i == j else f"c{cats[i]}.c{cats[j]}")
            i = j + 1
        return f"{text}:{','.join(runs)}"

    def __str__(self) -> str:
        return self.canonical


@dataclass(frozen=True)
class SelinuxContext:
    """`semanage fcontext -a [-s user] -t type [-r range]`; the role is never set."""

    type: str
    user: str | None = None
    range: SelinuxRange | None = None

    @property
    def role(self) -> None:
        return None


def parse_range(text: str) -> SelinuxRange:
    """Parse a range string exactly as the reference; InvalidValue for what it rejects."""
    parts = _two_parts(text, ":", text)
    sensitivities = _two_parts(parts[0], "-", text)
    low = _sensitivity(sensitivities[0], text)
    high = low
    if len(sensitivities) == 2:
        high = _sensitivity(sensitivities[1], text)
        if high < low:
            raise InvalidValue(
                f"SELinux range {text!r}: the high sensitivity s{high} is below the low "
                f"sensitivity s{low}",
                f"write the lower level first, e.g. s{high}-s{low}",
            )
    categories = None
    if len(parts) == 2:
        categories = _categories(_ruby_split(parts[1], ","), text)
    return SelinuxRange(low, high, categories)


def _two_parts(part: str, sep: str, whole: str) -> list[str]:
    # Split once on `sep`; both sides must be non-empty.
    pieces = part.split(sep, 1)
    if any(piece == "" for piece in pieces):
        raise InvalidValue(
            f"SELinux range {whole!r}: malformed part {part!r} (empty text around {sep!r})",
            _RANGE_FORMS,
        )
    return pieces


def _ruby_split(text: str, sep: str) -> list[str]:
    # Ruby's String#split drops trailing empty fields ("c1,".split(",") == ["c1"]).
    pieces = text.split(sep)
    while pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


def _number(item: str, prefix: str) -> int | None:
    if len(item) < 2 or not item.startswith(prefix):
        return None
    digits = item.replace(prefix, "", 1)
    if not digits or not set(digits) <= _DIGITS or len(digits) > MAX_DIGITS:
        return None
    return int(digits)


def _sensitivity(item: str, whole: str) -> int:
    number = _number(item, "s")
    if number is None:
        raise InvalidValue(
            f"SELinux range {whole!r}: malformed sensitivity {item!r}; a sensitivity is s "
            "followed by digits",
            _RANGE_FORMS,
        )
    return number


def _category(item: str, whole: str) -> int:
    number = _number(item, "c")
    if number is None or number > MAX_CATEGORY:
        reason = (
            f"c{number} is above c{MAX_CATEGORY}"
            if number is not None
            else "a category is c followed by digits"
        )
        raise InvalidValue(
            f"SELinux range {whole!r}: malformed category {item!r}; {reason}", _RANGE_FORMS
        )
    return number


def _categories(items: list[str], whole: str) -> tuple[int, ...]:
    found: list[int] = []
    for item in items:
        if "." in item:
            low_text, high_text = _two_parts(item, ".", whole)
            low, high = _category(low_text, whole), _category(high_text, whole)
            if high < low:
                raise InvalidValue(
                    f"SELinux range {whole!r}: category range {item!r} ends below its start",
                    f"write the lower category first, e.g. {high_text}.{low_text}",
                )
            found.extend(range(low, high + 1))
        else:
            found.append(_category(item, whole))
    found.sort()
    if len(set(found)) != len(found):
        dupes = sorted(c for c, n in Counter(found).items() if n > 1)
        raise InvalidValue(
            f"SELinux range {whole!r} lists categories more than once: "
            + ", ".join(f"c{c}" for c in dupes[:5]),
            "list each category once",
        )
    return tuple(found)
