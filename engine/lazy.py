"""Packages whose names are imported on first use: a package's `__init__` names what it
exports and where each lives, and a caller importing one name pays only for that name's module
(a runner of an in-place deployment does not import the ECS or alarm machinery it never uses)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name in `homes[module]` (names separated by
    spaces) is imported from that module when first asked for, then kept in the package like
    an eager import."""
    home_of = {name: module for module, names in homes.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in home_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home_of[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
