"""The design's invariant 2: engine never imports textual; engine/host is standard library only,
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
