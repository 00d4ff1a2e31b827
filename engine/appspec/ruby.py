"""The few Ruby conversions the reference agent applies to appspec values.

The agent is written in Ruby, and its accept/reject decisions follow Ruby semantics: `to_i` on a
timeout, `to_s` on a location or a mode, truthiness for `sudo`. These helpers reproduce them for
the values YAML can produce.
"""

from __future__ import annotations

import datetime
import math
import re

# String#to_i: leading whitespace, an optional sign, an optional `0d` prefix, then decimal digits
# with single underscores between them; anything after that is ignored; nothing gives 0.
_TO_I = re.compile(r"[ \t\n\v\f\r]*([-+]?)(?:0[dD])?(\d+(?:_\d+)*)")


class RubyConversionError(ValueError):
    """The Ruby conversion itself fails (NoMethodError or FloatDomainError in the agent)."""


class NumberTooLong(RubyConversionError):
    """Digits past Python's limit for converting text to an integer (Ruby has none): no value
    that long is a sensible one, so callers report it as out of range."""

    def __init__(self, digits: int) -> None:
        super().__init__(f"a number of {digits} digits")
        self.digits = digits


# Python refuses to convert longer digit strings (sys.get_int_max_str_digits()).
MAX_DIGITS = 4300


def to_i(value: object) -> int:
    """Ruby `value.to_i` for YAML values; raises RubyConversionError where Ruby raises."""
    if isinstance(value, bool) or value is None:
        # true.to_i and nil.to_i: NoMethodError / 0. Callers handle nil and false themselves.
        if value is None:
            return 0
        raise RubyConversionError("true/false have no integer value")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise RubyConversionError(f"{to_s(value)} has no integer value")
        return int(value)  # truncates toward zero, like Float#to_i
    if isinstance(value, str):
        match = _TO_I.match(value)
        if not match:
            return 0
        digits = match.group(2).replace("_", "")
        if len(digits.lstrip("0")) > MAX_DIGITS:
            raise NumberTooLong(len(digits))
        number = int(digits)
        return -number if match.group(1) == "-" else number
    raise RubyConversionError(f"a {type_name(value)} has no integer value")


def to_s(value: object) -> str:
    """Ruby `value.to_s` for YAML scalars."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_to_s(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _float_to_s(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def truthy(value: object) -> bool:
    """Ruby truthiness: only nil and false are false (0, "", "false" and [] are true)."""
    return value is not None and value is not False


def type_name(value: object) -> str:
    """A YAML-ish name of a value's type for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, bytes):
        return "binary value"
    return type(value).__name__
