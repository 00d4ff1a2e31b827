"""Commands start quietly and light: no library warning on stderr, and asyncssh (like textual)
is imported only by what needs it. Run as real subprocesses, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.ssh.helpers import REPO


def deploydeck(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "tui.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**env, "PYTHONPATH": str(REPO)},
    )


def test_help_writes_nothing_to_stderr() -> None:
    done = deploydeck("--help")
    assert done.returncode == 0
    assert "create-deployment" in done.stdout
    assert done.stderr == ""


def test_validate_writes_nothing_to_stderr() -> None:
    done = deploydeck("validate", "sample_revisions/web-v1")
    assert done.returncode == 0, done.stdout
    assert done.stderr == ""


def test_trust_help_writes_nothing_to_stderr() -> None:
    done = deploydeck("trust", "--help")
    assert done.returncode == 0
    assert done.stderr == ""


def imported_modules(*args: str) -> set[str]:
    """The modules `deploydeck ARGS` imports, from `python -X importtime`."""
    done = deploydeck(*args, python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_help_imports_neither_asyncssh_nor_textual() -> None:
    modules = imported_modules("--help")
    # the listing is read right (commands' own modules come through importlib, which
    # -X importtime does not report; what they import, it does)
    assert "tui.commands.console_cmd" in modules
    assert not {m for m in modules if m.split(".")[0] in ("asyncssh", "textual", "cryptography")}


def test_the_ssh_target_imports_asyncssh_without_a_warning(tmp_path: Path) -> None:
    """Where asyncssh is needed it is imported with every warning shown, and none is."""
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import engine.targets.ssh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0
    assert done.stderr == ""
