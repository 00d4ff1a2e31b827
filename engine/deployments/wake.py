"""Wake-up lines: FIFOs next to a deployment's log that one process pokes so that another
reads the journal at once instead of at its next poll. Waiting on one costs nothing while idle
(the event loop sleeps on the FIFO); the polls stay, for what nobody pokes.

- The runner's (`runs/<deployment id>.wake`): a stop request pokes it, so the runner reads the
  StopRequested just journaled at once.
- Each follower's (`runs/<deployment id>.follow-<pid>.wake`, `--wait` and the like): the runner
  pokes them all when it has journaled the deployment's end (and its rollback's), so the
  follower sees it at once, not up to a poll later.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import stat
from pathlib import Path


def wake_path(state_dir: Path, deployment_id: str) -> Path:
    return state_dir / "runs" / f"{deployment_id}.wake"


def follower_path(state_dir: Path, deployment_id: str) -> Path:
    """A new follower line of this process for the deployment."""
    name = f"{deployment_id}.follow-{os.getpid()}-{next(_FOLLOWERS)}.wake"
    return state_dir / "runs" / name


_FOLLOWERS = itertools.count(1)


def wake_runner(state_dir: Path, deployment_id: str) -> bool:
    """Poke the runner of the deployment; False when none listens (none runs it, or one that
    only polls), which is never an error: the request is in the journal either way."""
    return _poke(wake_path(state_dir, deployment_id))


def wake_followers(state_dir: Path, deployment_id: str) -> None:
    """Poke every process following the deployment; a line nobody holds any more (its
    follower was killed) is removed."""
    for path in (state_dir / "runs").glob(f"{deployment_id}.follow-*.wake"):
        if not _poke(path):
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(path.lstat().st_mode):  # only a line, never another file
                    path.unlink()


def _poke(path: Path) -> bool:
    """Write a byte to the FIFO at `path`; False when it is not there, is no FIFO, or has no
    reader."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:  # no FIFO, or no process holding it open (ENXIO)
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
    """The side that waits on the FIFO at `path` (wake_path for a runner, follower_path for a
    follower): `wait(seconds)` returns when poked or when `seconds` pass. Where a FIFO cannot
    be made, it only waits out the seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.poked: asyncio.Future[None] | None = None
        self._pending = False  # poked while not waiting: the next wait returns at once
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a process that died left it
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
        else:
            self._pending = True

    async def wait(self, seconds: float) -> None:
        if self._pending:
            self._pending = False
            return
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
        with contextlib.suppress(RuntimeError):  # no running loop: it is gone, and its readers
            asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)
        self.fd = None
        with contextlib.suppress(OSError):
            self.path.unlink()
