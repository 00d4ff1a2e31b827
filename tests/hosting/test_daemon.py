"""Hosts: started detached once per folder, called over their socket, stopped cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.hosting.daemon import HostPlace, HostStartError, ensure_host, stop_host
from engine.hosting.rpc import HostUnreachable, RemoteError, call
from tests.conftest import REPO

MODULE = "tests.hosting.echo_host"


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


async def _until(predicate, seconds: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def test_one_host_per_folder_answers_calls_and_stops_cleanly(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    first, second = await asyncio.gather(ensure_host(place, MODULE), ensure_host(place, MODULE))
    assert first == second == place.pid()
    assert await ensure_host(place, MODULE) == first
    assert await call(place.socket, "echo", value={"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(RemoteError) as raised:
        await call(place.socket, "fail", message="no such instance web-9")
    assert (raised.value.kind, raised.value.message) == ("ValueError", "no such instance web-9")
    with pytest.raises(RemoteError, match="not a call this host answers"):
        await call(place.socket, "nothing")
    with pytest.raises(RemoteError, match="not a call this host answers"):
        await call(place.socket, "echo", wrong=1)

    assert await stop_host(place)
    assert not _alive(first)
    assert (place.folder / "closed").exists()
    assert not place.socket.exists() and place.pid() is None
    assert place.log.read_text() == ""  # no traceback, no warning
    assert not await stop_host(place)
    with pytest.raises(HostUnreachable):
        await call(place.socket, "echo", value=1)


async def test_a_caller_that_leaves_cancels_its_call_in_the_host(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    await ensure_host(place, MODULE)
    with pytest.raises(TimeoutError):
        await call(place.socket, "sleep", seconds=600, timeout=0.3)
    await _until((place.folder / "cancelled").exists)
    assert await call(place.socket, "sleep", seconds=0) == "slept"


async def test_a_stop_answers_and_ends_calls_under_way(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    sleeping = asyncio.ensure_future(call(place.socket, "sleep", seconds=600))
    await asyncio.sleep(0.2)
    assert await call(place.socket, "shutdown") == {"pid": pid}
    with pytest.raises(HostUnreachable, match="closed the connection before answering sleep"):
        await sleeping
    await _until(lambda: not _alive(pid))
    assert (place.folder / "cancelled").exists() and (place.folder / "closed").exists()
    assert place.log.read_text() == ""


async def test_the_host_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    starter = (
        "import asyncio, sys; from engine.hosting.daemon import HostPlace, ensure_host; "
        f"print(asyncio.run(ensure_host(HostPlace(sys.argv[1]), {MODULE!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", starter, str(place.folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pid = int(done.stdout)
    assert done.stderr == ""
    assert _alive(pid) and os.getsid(pid) == pid  # a session of its own
    assert await call(place.socket, "echo", value="still here") == "still here"


async def test_a_host_ends_when_its_folder_is_removed(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    for path in place.folder.iterdir():
        path.unlink()
    place.folder.rmdir()
    await _until(lambda: not _alive(pid))


async def test_sigterm_closes_what_the_host_holds(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    os.kill(pid, signal.SIGTERM)
    await _until(lambda: not _alive(pid))
    assert (place.folder / "closed").exists()
    assert not place.socket.exists()


async def test_a_long_folder_gets_a_short_private_socket(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / ("deep-" * 25) / "host")
    assert place.socket.parent != place.folder
    await ensure_host(place, MODULE)
    assert await call(place.socket, "echo", value=7) == 7
    assert place.socket.parent.stat().st_mode & 0o777 == 0o700
    assert place.socket.stat().st_mode & 0o777 == 0o600


async def test_a_host_that_cannot_open_says_why_at_once(tmp_path: Path) -> None:
    place = HostPlace(tmp_path / "host")
    with pytest.raises(HostStartError, match="failed: port 1 is not free"):
        await ensure_host(place, MODULE, ["--fail"], start_timeout=120)
    assert place.pid() is None
