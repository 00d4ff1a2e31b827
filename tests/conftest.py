"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_revisions"


def require_tool(name: str) -> str:
    """The path of a command the tests need; fail loudly (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed; run ./scripts/test, which installs it")
    return path


def unavailable(reason: str) -> None:
    """A test that cannot run here: skipped on a developer's machine, a failure under CI
    (scripts/test sets CI=true and installs what the suite needs)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (see scripts/test)")
    pytest.skip(reason)


@pytest.fixture
def world_readable_tmp(tmp_path: Path) -> Path:
    """A tmp folder other users can traverse (pytest's is 0700), for runas tests."""
    path = tmp_path
    while path != path.parent:
        if str(path).startswith(("/tmp", os.path.realpath("/tmp"))):
            try:
                path.chmod(path.stat().st_mode | 0o755)
            except PermissionError:
                pass
        path = path.parent
    return tmp_path
