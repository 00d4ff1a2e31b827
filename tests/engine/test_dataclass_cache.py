"""The dataclass methods' compiled code kept across processes (engine/dataclass_cache.py):
real interpreters, one filling the file and the next using it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A process that enables the cache at `path`, defines a frozen dataclass and a plain one,
# saves, and prints what it compiled and how the classes behave.
PROGRAM = """
import dataclasses, json, sys
from pathlib import Path
from engine import dataclass_cache

dataclass_cache.enable(Path(sys.argv[1]))

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 2

@dataclasses.dataclass
class Box:
    items: list = dataclasses.field(default_factory=list)

try:
    Point(1).x = 5
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
compiled = dataclass_cache._cache.new
dataclass_cache.save()
print(json.dumps({
    "compiled": compiled,
    "repr": repr(Point(1)),
    "eq": Point(1) == Point(1, 2),
    "hash": hash(Point(1)) == hash(Point(1, 2)),
    "frozen": frozen,
    "box": repr(Box()),
    "annotations": repr(Point.__init__.__annotations__),
}))
"""


def python(program: str, path: Path, *, write_bytecode: bool) -> str:
    """`program` run by a fresh interpreter in the repository with `path` as its argument;
    its output, once it has exited cleanly and silently on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", program, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def run(path: Path, *, write_bytecode: bool = True) -> dict:
    return json.loads(python(PROGRAM, path, write_bytecode=write_bytecode))


BEHAVIOUR = {
    "repr": "Point(x=1, y=2)",
    "eq": True,
    "hash": True,
    "frozen": True,
    "box": "Box(items=[])",
    # the real types, as without the cache (not the names the generated text uses)
    "annotations": "{'x': <class 'int'>, 'y': <class 'int'>, 'return': None}",
}


def test_the_second_process_compiles_nothing_and_gets_the_same_classes(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "dataclass-methods.marshal"
    first = run(path)
    assert first.pop("compiled") > 5 and path.exists()
    assert first == BEHAVIOUR
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    second = run(path)
    assert second.pop("compiled") == 0  # every method came from the file
    assert second == BEHAVIOUR


def test_a_damaged_or_foreign_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dataclass-methods.marshal"
    for damage in (b"", b"not marshal at all", b"\x00" * 64):
        path.write_bytes(damage)
        result = run(path)
        assert result.pop("compiled") > 5 and result == BEHAVIOUR
        assert path.read_bytes() != damage  # written afresh


def test_nothing_is_written_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    path = tmp_path / "dataclass-methods.marshal"
    assert run(path, write_bytecode=False)["compiled"] > 5
    assert not path.exists()


def test_the_install_step_fills_it_for_every_module(tmp_path: Path) -> None:
    """`python -m engine.dataclass_cache` (scripts/ensure-venv runs it) imports every module
    of engine and tui cleanly and writes even where bytecode is not written."""
    fill = (
        "import sys; from pathlib import Path; from engine import dataclass_cache as c; "
        "print(c.fill(Path(sys.argv[1])))"
    )
    assert int(python(fill, tmp_path / "filled.marshal", write_bytecode=False)) > 500
    assert (tmp_path / "filled.marshal").stat().st_size > 100_000


def test_a_process_decodes_only_the_modules_it_imports(tmp_path: Path) -> None:
    """The file holds a part per module: importing engine.model decodes that module's code
    (and what it imports), not the file's every entry, and compiles none of it."""
    path = tmp_path / "filled.marshal"
    fill = (
        "import sys; from pathlib import Path; from engine import dataclass_cache as c; "
        "print(c.fill(Path(sys.argv[1])))"
    )
    total = int(python(fill, path, write_bytecode=False))
    some = (
        "import json, sys; from pathlib import Path; from engine import dataclass_cache as c; "
        "c.enable(Path(sys.argv[1])); import engine.model; "
        "print(json.dumps([c._cache.new, c._cache.count()]))"
    )
    compiled, decoded = json.loads(python(some, path, write_bytecode=False))
    assert compiled == 0 and 0 < decoded < total / 4
