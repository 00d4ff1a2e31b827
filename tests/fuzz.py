"""Hypothesis strategies shared by the parser fuzz tests: odd YAML values, structural mutations
of a valid document, and damage to its text."""

from __future__ import annotations

import copy
import datetime
import json
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The suite draws the same examples every run, so a red run is reproducible and never luck;
# DEPLOYDECK_FUZZ_EXAMPLES=5000 hunts with fresh random examples (fix what it finds, add a case).
_HUNT = os.environ.get("DEPLOYDECK_FUZZ_EXAMPLES")
FAST = settings(
    max_examples=int(_HUNT or "300"),
    derandomize=_HUNT is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values YAML and the parsers are likely to trip on: YAML 1.1 look-alikes, huge and special
# numbers, dates, bytes, CodeDeploy spellings.
ODD_SCALARS = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        420,
        2**70,
        0.0,
        -0.0,
        1.9,
        1e308,
        float("inf"),
        float("nan"),
        "",
        " ",
        "0.0",
        "0644",
        "false",
        "30s",
        "u::rw",
        "s0:c1023",
        "s5-s1",
        "~",
        "null",
        "*",
        "<<",
        "AWS::ECS::Service",
        "${NOT_SET}",
        datetime.date(2001, 2, 3),
        datetime.datetime(2001, 2, 3, 4, 5, 6),
        b"\x00\xff",
    ]
)
SCALARS = st.one_of(
    ODD_SCALARS,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)


def keys_like(names: list[str]) -> st.SearchStrategy[Any]:
    """Mapping keys: the format's own names, random text, numbers and booleans."""
    return st.one_of(st.sampled_from(names), st.text(max_size=10), st.integers(), st.booleans())


def values_with(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Any YAML value: scalars, lists and mappings nested a few levels."""
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=20,
    )


def dump(doc: object) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _containers(doc: Any, out: list[Any]) -> list[Any]:
    if isinstance(doc, dict | list):
        out.append(doc)
        children = doc.values() if isinstance(doc, dict) else doc
        for child in children:
            _containers(child, out)
    return out


def mutate(
    doc: Any, data: st.DataObject, keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]
) -> Any:
    """One structural mutation somewhere in `doc`: delete, replace, retype, insert, rename."""
    doc = copy.deepcopy(doc)
    target = data.draw(st.sampled_from(_containers(doc, [])))
    op = data.draw(st.sampled_from(["delete", "replace", "retype", "insert", "rename"]))
    if isinstance(target, dict):
        names = list(target)
        if not names or op == "insert":
            target[data.draw(keys)] = data.draw(values)
            return doc
        key = data.draw(st.sampled_from(names))
        if op == "delete":
            del target[key]
        elif op == "replace":
            target[key] = data.draw(values)
        elif op == "retype":
            value = target[key]
            target[key] = data.draw(
                st.sampled_from(
                    [[value], {"k": value}, str(value), None, json.dumps(value, default=str)]
                )
            )
        else:
            renamed = data.draw(st.sampled_from([str(key).upper(), str(key)[:-1], f"{key}s"]))
            target[renamed] = target.pop(key)
    else:
        if not target or op == "insert":
            target.insert(data.draw(st.integers(0, len(target))), data.draw(values))
            return doc
        index = data.draw(st.integers(0, len(target) - 1))
        if op == "delete":
            del target[index]
        elif op in ("replace", "rename"):
            target[index] = data.draw(values)
        else:
            target[index] = [target[index]]
    return doc


def maybe_damaged(text: str, data: st.DataObject) -> str:
    """Sometimes damage the text itself: cut a slice out or splice odd characters in."""
    if not data.draw(st.booleans()):
        return text
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 8)))
    return text[:start] + data.draw(st.text(max_size=4)) + text[end:]
