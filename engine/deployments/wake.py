"""A runner's wake-up line: a FIFO next to its log (`runs/<deployment id>.wake`) that a stop
request pokes, so the runner reads the StopRequested just journaled at once instead of at its
next poll. Waiting on it costs nothing while idle (the event loop sleeps on the FIFO); the
poll stays, for requests nobody pokes (a runner started before, a request journaled by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path


def wake_path(state_dir: Path, deployment_id: str) -> Path:
    return state_dir / "runs" / f"{deployment_id}.wake"


def wake_runner(state_dir: Path, deployment_id: str) -> bool:
    """Poke the runner of the deployment; False when none listens (none runs it, or one that
    only polls), which is never an error: the request is in the journal either way."""
    try:
        fd = os.open(
            wake_path(state_dir, deployment_id), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW
        )
    except OSError:  # no FIFO, or no runner holding it open (ENXIO)
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        with contextlib.suppress(BlockingIOError):  # full: pokes are pending already
            os.write(fd, b"!")
        return True
    finally:
        os.close(fd)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WakeLine:
    """The runner's side, while it runs one deployment: `wait(seconds)` returns when poked or
    when `seconds` pass. Where a FIFO cannot be made, it only waits out the seconds."""

    def __init__(self, state_dir: Path, deployment_id: str) -> None:
        self.path = wake_path(state_dir, deployment_id)
        self.fd: int | None = None
        self.poked: asyncio.Future[None] | None = None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a runner that died left it
            os.mkfifo(self.path, 0o600)
            # read and write: the FIFO never reads as closed, whoever pokes it and leaves
            self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            self.fd = None
            return
        asyncio.get_running_loop().add_reader(self.fd, self._drain)

    def _drain(self) -> None:
        assert self.fd is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass
        if self.poked is not None:
            _settle(self.poked)

    async def wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.poked = poked = loop.create_future()
        timer = loop.call_later(seconds, _settle, poked)
        try:
            await poked
        finally:
            timer.cancel()
            self.poked = None

    def close(self) -> None:
        if self.fd is None:
            return
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)
        self.fd = None
        with contextlib.suppress(OSError):
            self.path.unlink()
