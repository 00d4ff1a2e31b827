"""Frozen dataclasses to JSON-able data and back (engine/serialize.py), as the journal stores
every event: nested values, optional fields, tuples and dicts of them, enums by value."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.serialize import from_data, to_data


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclass(frozen=True)
class Leaf:
    name: str
    colour: Colour


@dataclass(frozen=True)
class Tree:
    leaf: Leaf | None
    leaves: tuple[Leaf, ...]
    by_name: dict[str, Leaf]
    sizes: tuple[Size, ...]
    label: str  # holds an enum member below: stored as its plain value
    either: int | str
    weight: float = 0.5


def test_nested_values_come_back_equal_and_go_out_as_plain_json_types() -> None:
    red, blue = Leaf("a", Colour.RED), Leaf("b", Colour.BLUE)
    tree = Tree(red, (red, blue), {"b": blue}, (Size.LARGE,), Colour.BLUE, "x")
    data = to_data(tree)
    assert data == {
        "leaf": {"name": "a", "colour": "red"},
        "leaves": [{"name": "a", "colour": "red"}, {"name": "b", "colour": "blue"}],
        "by_name": {"b": {"name": "b", "colour": "blue"}},
        "sizes": [2],
        "label": "blue",
        "either": "x",
        "weight": 0.5,
    }
    assert type(data["label"]) is str and type(data["sizes"][0]) is int  # not the members
    back = from_data(Tree, json.loads(json.dumps(data)))
    assert back == Tree(red, (red, blue), {"b": blue}, (Size.LARGE,), "blue", "x")
    assert type(back.leaves) is tuple and back.sizes[0] is Size.LARGE


def test_none_stays_none_and_unknown_keys_are_ignored() -> None:
    data = {
        "leaf": None,
        "leaves": [],
        "by_name": {},
        "sizes": [],
        "label": "",
        "either": 3,
        "added_later": {"a": 1},  # a newer journal's field, read by this version
    }
    assert from_data(Tree, data) == Tree(None, (), {}, (), "", 3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_kind_survives_the_journal(data: st.DataObject) -> None:
    """Any event the engine can journal is read back as the same event: compared by repr,
    which tells an enum member from its value and a tuple from a list (and NaN equals NaN)."""
    for kind, cls in ev.EVENT_TYPES.items():
        event = data.draw(st.from_type(cls), label=kind)
        read = ev.decode(kind, event.deployment_id, event.time, ev.encode(event))
        assert repr(read) == repr(event)
