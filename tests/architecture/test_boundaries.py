"""ARCHITECTURE.md invariant 2: engine never imports textual; engine/host is standard library only,
Python 3.8 syntax, and self-contained (it is shipped to SSH hosts as is)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "engine" / "host"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_engine_never_imports_textual() -> None:
    offenders = [
        str(p)
        for p in (REPO / "engine").rglob("*.py")
        if any(m.split(".")[0] == "textual" for m in imported_modules(p))
    ]
    assert offenders == []
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, engine, engine.local, engine.host.agent; print('textual' in sys.modules)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_host_imports_only_the_standard_library() -> None:
    offenders = []
    for path in HOST.rglob("*.py"):
        for module in imported_modules(path):
            if module.split(".")[0] not in sys.stdlib_module_names:
                offenders.append(f"{path.name}: {module}")
    assert offenders == []  # relative imports only inside the package


def test_host_parses_as_python_38() -> None:
    for path in HOST.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


def newer_than_38(*paths: Path) -> list[str]:
    """vermin's findings (file:line: feature) of what needs a Python newer than 3.8: standard
    library modules, functions and arguments, builtin generics in evaluated annotations. A host
    may run 3.8 and Debian installs no interpreter but 3.11, so the source is checked instead."""
    vermin = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
    options = ["-q", "--violations", "--no-tips", "--eval-annotations", "--format", "parsable"]
    done = subprocess.run(
        [*vermin, *options, "--target=3.8-", "--no-parse-comments", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr
    found = []
    for line in done.stdout.splitlines():
        path, row, _column, _py2, py3, feature = line.split(":", 5)
        if path and row and feature:
            found.append(f"{Path(path).name}:{row}: {feature} needs {py3}")
    # vermin knows `"a".removeprefix` but not `name.removeprefix`: methods newer than 3.8 are
    # also found by name, whatever object they are called on.
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in METHODS_NEWER_THAN_38:
                found.append(f"{path.name}:{node.lineno}: .{node.attr} needs 3.9+")
    return found


# str, bytes, pathlib, int and random methods added in 3.9 to 3.12 (names no 3.8 API shares).
METHODS_NEWER_THAN_38 = frozenset(
    {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "hardlink_to"}
    | {"bit_count", "randbytes", "is_junction", "with_segments"}
)


def test_host_uses_nothing_newer_than_python_38() -> None:
    assert newer_than_38(*sorted(HOST.rglob("*.py"))) == []


def test_the_38_check_finds_newer_apis(tmp_path: Path) -> None:
    """The check above can fail: a file using 3.9+ APIs with 3.8-valid syntax is caught."""
    newer = tmp_path / "newer.py"
    newer.write_text(
        "import functools\n"
        "def strip(name: list[str]) -> str:\n"
        "    return name[0].removeprefix('x')\n"
        "cached = functools.cache(strip)\n"
    )
    ast.parse(newer.read_text(), feature_version=(3, 8))  # the syntax check alone passes
    found = newer_than_38(newer)
    assert any("list[..]" in f for f in found), found
    assert any("removeprefix" in f for f in found), found
    assert any("functools.cache" in f for f in found), found


def test_host_runs_alone_without_site_packages(tmp_path: Path) -> None:
    """A copy of the package under another name imports with only the standard library."""
    shutil.copytree(HOST, tmp_path / "shipped_agent")
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-s",
            "-E",
            "-c",
            "import shipped_agent.agent, shipped_agent.protocol, sys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('engine', 'yaml', 'textual')))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    version = subprocess.run(
        [sys.executable, "-S", "-s", "-E", "-m", "shipped_agent", "version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert '"type": "version"' in version.stdout
