"""The real command line in tests: `python -m tui.cli ...` run in a folder as a user runs it,
stdin not a terminal, this repository importable; and the arguments of `create-deployment`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOYDECK = [sys.executable, "-m", "tui.cli"]


def environment(**extra: str) -> dict[str, str]:
    """This process's environment with the repository importable, plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def home_environment(folder: Path) -> dict[str, str]:
    """`environment()` with HOME and XDG_DATA_HOME inside `folder`: the run leaves nothing
    outside it (a demo, a known_hosts, a cache)."""
    return environment(HOME=str(folder / "home"), XDG_DATA_HOME=str(folder / "xdg"))


def dd(
    folder: Path, *args: str, timeout: float | None = 180, env: dict[str, str] | None = None, **kw
) -> subprocess.CompletedProcess:
    """`deploydeck ARGS` in `folder`, run to its end, its output captured."""
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(
        [*DEPLOYDECK, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or environment(),
        **kw,
    )


def dd_started(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`deploydeck ARGS` started in `folder` (not waited for), its output captured."""
    return subprocess.Popen(
        [*DEPLOYDECK, *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or environment(),
    )


def dd_at_home(folder: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`dd` with its home inside `folder` (home_environment)."""
    return dd(folder, *args, timeout=timeout, env=home_environment(folder))


def group_args(application: str = "app", group: str = "fleet") -> list[str]:
    return ["--application-name", application, "--deployment-group-name", group]


def create_deployment(
    revision: Path | str, *extra: str, application: str = "app", group: str = "fleet"
) -> list[str]:
    """`create-deployment` of the revision at `revision` to `application`/`group`."""
    return [
        "create-deployment",
        *group_args(application, group),
        "--revision",
        str(revision),
        *extra,
    ]


def register_revision(revision: Path | str, *extra: str, application: str = "app") -> list[str]:
    """`register-revision` of the revision at `revision` for `application`."""
    return [
        "register-revision",
        "--application-name",
        application,
        "--revision",
        str(revision),
        *extra,
    ]


def deployed(
    folder: Path, revision: Path | str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`create-deployment --wait` of `revision` to app/fleet, which must succeed."""
    done = dd(folder, *create_deployment(revision, "--wait", *extra), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done
