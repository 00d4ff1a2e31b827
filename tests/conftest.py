"""Shared fixtures for the whole suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_revisions"

# Demos set up by parallel test workers search for free ports from places of their own.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
os.environ["DEPLOYDECK_DEMO_FIRST_PORT"] = str(8101 + 400 * int(_WORKER or 0))


# Every host (engine/hosting) a test starts is listed here and stopped after the test.
_HOSTS_LOG = Path(tempfile.gettempdir()) / f"deploydeck-test-hosts-{os.getpid()}"
os.environ["DEPLOYDECK_HOSTS_LOG"] = str(_HOSTS_LOG)


@pytest.fixture(autouse=True)
def _no_host_outlives_its_test() -> Iterator[None]:
    yield
    try:
        folders = {line for line in _HOSTS_LOG.read_text().splitlines() if line}
    except FileNotFoundError:
        return
    _HOSTS_LOG.unlink()
    from engine.hosting.daemon import HostPlace, stop_host

    async def stop_all() -> None:
        await asyncio.gather(*(stop_host(HostPlace(Path(f)), grace=2.0) for f in folders))

    asyncio.run(stop_all())


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
def world_readable_tmp() -> Iterator[Path]:
    """A folder other users can traverse, for runas tests. It lives outside pytest's tmp
    tree, whose root any pytest session starting on the machine sets back to 0700."""
    path = Path(tempfile.mkdtemp(prefix="deploydeck-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sigint_as_at_a_terminal() -> None:
    """A child's preexec_fn: SIGINT acts as Ctrl-C at a terminal, even when the test run
    itself was started with SIGINT ignored (in the background, or under nohup)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
