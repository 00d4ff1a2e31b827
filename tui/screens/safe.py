"""Screens outlive their widgets at both ends: a key or a timer can reach a screen whose
children are not mounted yet, or one already dismissed. Screens keep references to the
widgets they compose (made in `__init__`, so they exist before compose runs), draw only when
`drawable`, and leave only when on top: no query can miss and no dismiss pops another screen.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widget import Widget


def drawable(node: Screen[Any] | Widget) -> bool:
    """Composed and still in the app's DOM: its children exist and can be updated. (True
    from its own on_mount on, which runs once compose has mounted the children.)"""
    return node.is_attached and bool(node.children)


def leave(screen: Screen[Any], result: Any = None) -> None:
    """Dismiss `screen` if it is the one on top; a late key for a screen already gone (or
    one under a dialog) must not pop a different screen."""
    if screen.is_active:
        screen.dismiss(result)
