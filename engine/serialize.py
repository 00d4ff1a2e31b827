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
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
# values `to_data` keeps as they are: no dataclass, container or enum can be one of these
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_data(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _field_names(kind)  # type: ignore[arg-type]  # a class is hashable; mypy misses it
    if names is not None:
        return {name: to_data(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


@functools.cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names, once per class (events are encoded by the thousand);
    None for any other type."""
    if dataclasses.is_dataclass(kind) and not issubclass(kind, type):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


def from_data(cls: type[T], data: Any) -> T:
    """Build `cls` from `to_data` output; unknown keys are ignored (older journals)."""
    converters = _converters(cls)  # type: ignore[arg-type]  # hashable; mypy misses it in type[T]
    return cls(**{k: _apply(converters[k], v) for k, v in data.items() if k in converters})


Converter = Callable[[Any], Any]


@functools.cache
def _converters(cls: type) -> dict[str, Converter | None]:
    """Per field of a dataclass, how `from_data` turns its JSON value into the field's type
    (None: the value as it is), worked out from the type hints once per class."""
    hints = typing.get_type_hints(cls)
    return {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}


def _converter(hint: Any) -> Converter | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(options[0]) if len(options) == 1 else None
    if origin is tuple:
        args = typing.get_args(hint)
        item = _converter(args[0] if args else Any)
        return lambda value: tuple(_apply(item, v) for v in value)
    if origin is dict:
        args = typing.get_args(hint)
        item = _converter(args[1] if len(args) == 2 else Any)
        return lambda value: {k: _apply(item, v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda value: from_data(hint, value)  # built when used: types may nest
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    return None


def _apply(convert: Converter | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)
