"""Frozen dataclasses to JSON-able dicts and back, by their type hints.

Handles what the engine's values use: nested dataclasses, `X | None`, `tuple[X, ...]`,
`dict[str, X]`, enums (by value), str/int/float/bool.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(cls: type[T], data: Any) -> T:
    """Build `cls` from `to_data` output; unknown keys are ignored (older journals)."""
    hints = _hints(cls)  # type: ignore[arg-type]  # a class is hashable; mypy misses it in type[T]
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: _convert(hints[k], v) for k, v in data.items() if k in names}
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_convert(item, v) for v in value)
    if origin is dict:
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_data(hint, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    return value
