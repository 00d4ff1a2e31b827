"""scripts/console and scripts/test install into .venv only when pyproject.toml, Python or the
extras changed (the install is editable: code changes need none), and compile the bytecode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Stands in for python3 on PATH: `-m venv DIR` makes DIR with itself as its python and a
# `deploydeck` that prints its arguments; `-m pip` and `-m compileall` are recorded in $STEPS;
# anything else runs the real interpreter.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python"
  printf '#!/bin/sh\\necho "deploydeck $*"\\n' >"$3/bin/deploydeck"
  chmod +x "$3/bin/deploydeck"
  exit 0
fi
if [ "$1" = -m ] && { [ "$2" = pip ] || [ "$2" = compileall ]; }; then
  shift
  echo "$*" >>"$STEPS"
  exit 0
fi
exec {real} "$@"
"""


def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the scripts and pyproject.toml, with the fake python3 first on PATH."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON.replace("{real}", sys.executable))
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STEPS": str(tmp_path / "steps"),
    }
    return root, env


def steps(tmp_path: Path) -> list[str]:
    log = tmp_path / "steps"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def console(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(root / "scripts" / "console"), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_console_installs_once_then_starts_at_once(tmp_path: Path) -> None:
    root, env = checkout(tmp_path)
    assert console(root, env, "--version").strip() == "deploydeck --version"
    first = steps(tmp_path)
    assert "pip install -q -e ." in first
    assert "compileall -q engine tui" in first
    assert console(root, env, "list-deployments").strip() == "deploydeck list-deployments"
    assert steps(tmp_path) == []  # nothing changed: no install


def test_console_installs_again_when_pyproject_changes(tmp_path: Path) -> None:
    root, env = checkout(tmp_path)
    console(root, env)
    steps(tmp_path)
    with (root / "pyproject.toml").open("a") as handle:
        handle.write("\n# a new dependency would go here\n")
    console(root, env)
    assert "pip install -q -e ." in steps(tmp_path)


def test_test_extras_are_installed_once_and_serve_the_console(tmp_path: Path) -> None:
    root, env = checkout(tmp_path)
    console(root, env)
    steps(tmp_path)
    ensure = [str(root / "scripts" / "ensure-venv"), "test"]
    subprocess.run(ensure, env=env, check=True)
    assert "pip install -q -e .[test]" in steps(tmp_path)  # the console's install lacks them
    subprocess.run(ensure, env=env, check=True)
    console(root, env)
    assert steps(tmp_path) == []
