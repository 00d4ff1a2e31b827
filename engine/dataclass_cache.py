"""The compiled code of dataclass methods, kept across processes like bytecode.

On Python 3.11 `@dataclass` writes each generated method (`__init__`, `__repr__`, `__eq__`,
`__hash__`, frozen `__setattr__`...) as source text and compiles it when the class is created:
about 0.6 ms a class, 40 % of a command's imports (it has about 100 classes) and as much again
in the runner it starts. `enable` has the dataclasses module look each text up in a file of
code objects compiled before, compiling (and remembering) only what is new. The text is the
key, so a stale entry is never used: changed code simply misses.

The file sits next to the package's bytecode, under the name of this Python's bytecode
format, and is written as bytecode is: at the end of a process that compiled something new,
unless Python writes no bytecode (PYTHONDONTWRITEBYTECODE) or the folder is not writable.
The install step fills it once for every module (`python -m engine.dataclass_cache`). It holds
one marshalled part per module, decoded when that module first creates a class: a process
decodes the code of the modules it imports, not all 1,100 entries (8 ms a process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

# Entries kept at most per module: past that, a write keeps only what its own process used, so
# the file does not grow with every edit of a class over a long-lived checkout.
MAX_MODULE_ENTRIES = 1000
DEFAULT_PATH = (
    Path(__file__).parent
    / "__pycache__"
    / f"dataclass-methods.{sys.implementation.cache_tag}.marshal"
)


def _header() -> bytes:
    """This Python's bytecode magic and this file's own format: either changing voids it."""
    return importlib.util.MAGIC_NUMBER + b"dataclass methods 3\n"


class _Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts: dict[str, bytes] | None = None  # module -> its marshalled entries
        self.known: dict[str, dict[str, CodeType]] = {}  # the parts decoded, by module
        self.used: dict[str, dict[str, CodeType]] = {}
        self.changed: set[str] = set()  # modules with entries compiled here
        self.new = 0

    def _read(self) -> dict[str, bytes]:
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            data = self.path.read_bytes()
            magic = _header()
            if data.startswith(magic):
                loaded = marshal.loads(data[len(magic) :])
                if isinstance(loaded, dict):
                    return loaded
        return {}

    def _entries(self, module: str) -> dict[str, CodeType]:
        """The module's entries, its part decoded at first use (read at the first class)."""
        entries = self.known.get(module)
        if entries is None:
            if self.parts is None:
                self.parts = self._read()
            entries = {}
            part = self.parts.get(module)
            with contextlib.suppress(ValueError, EOFError, TypeError):
                loaded = marshal.loads(part) if isinstance(part, bytes) else None
                if isinstance(loaded, dict):
                    entries = loaded
            self.known[module] = entries
        return entries

    def exec(self, source: Any, globals: Any = None, locals: Any = None) -> None:
        """`exec` as the dataclasses module calls it, with the code compiled at most once."""
        if not isinstance(source, str):
            exec(source, globals, locals)
            return
        # the globals are those of the module defining the class
        module = str(globals.get("__name__", "")) if isinstance(globals, dict) else ""
        entries = self._entries(module)
        code = entries.get(source)
        if code is None:
            # as `exec(text)` in the dataclasses module compiles it: none of this module's
            # __future__ flags (postponed annotations would turn __init__'s into strings)
            code = compile(source, "<string>", "exec", dont_inherit=True)
            entries[source] = code
            self.changed.add(module)
            self.new += 1
        self.used.setdefault(module, {})[source] = code
        exec(code, globals, locals)

    def count(self) -> int:
        """The entries of every module this process decoded."""
        return sum(len(entries) for entries in self.known.values())

    def save(self, force: bool = False) -> None:
        """Write the file if this process compiled something new, atomically; quietly not
        when bytecode is not written (unless `force`) or the folder is not writable."""
        if not self.changed or (sys.dont_write_bytecode and not force):
            return
        import tempfile

        parts = dict(self.parts if self.parts is not None else self._read())
        for module in self.changed:
            entries = self.known[module]
            if len(entries) > MAX_MODULE_ENTRIES:
                entries = self.used.get(module, {})
            parts[module] = marshal.dumps(entries)
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".dataclass-", dir=self.path.parent)
            try:
                os.fchmod(handle, 0o644)  # readable by all, as bytecode is
                with os.fdopen(handle, "wb") as out:
                    out.write(_header() + marshal.dumps(parts))
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            self.parts = parts
            self.changed.clear()
            self.new = 0


_cache: _Cache | None = None


def enable(path: Path = DEFAULT_PATH) -> None:
    """From now on, dataclasses created in this process (and processes it forks) reuse the
    code compiled before. Call before the modules defining them are imported."""
    global _cache
    if _cache is None:
        _cache = _Cache(path)
        # the dataclasses module looks `exec` up in its globals before the builtins
        dataclasses.exec = _cache.exec  # type: ignore[attr-defined]


def save(force: bool = False) -> None:
    """Write what this process compiled (see `_Cache.save`); nothing when not enabled."""
    if _cache is not None:
        _cache.save(force)


def fill(path: Path = DEFAULT_PATH) -> int:
    """Import every module of deploydeck with the cache enabled and write it: the install
    step's warm-up. The number of entries written."""
    import pkgutil

    enable(path)
    for package in ("engine", "tui"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    save(force=True)
    assert _cache is not None
    return _cache.count()


if __name__ == "__main__":
    print(f"dataclass methods cached: {fill()}")
