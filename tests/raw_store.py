"""Raw access to an engine's private store, for tests that check or seed what is recorded.

The console and the CLI never do this: they read through the engine's facade (a test in
tests/architecture holds them to it).
"""

from __future__ import annotations

from engine.api import Engine
from engine.store import Store


def raw_store(engine: Engine) -> Store:
    """The database an engine writes to, below its facade."""
    return engine._store
