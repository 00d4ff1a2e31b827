"""Children a runner forks for its helpers (the watchdog, the file workers, the hook launcher):
forking copies a process whose modules are loaded already, so a helper starts in about a
millisecond instead of an interpreter's tens, but the child must first leave behind what was
its parent's: signal handlers, the event loop's wakeup descriptor, open files and sockets. It
exits without running its parent's exit handlers and is reaped by the pidfd that tells its end.
Standard library only."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Iterable
from typing import NoReturn


def fork() -> int:
    """os.fork(), once this process's buffered output is out (else both would write it)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return os.fork()


def leave_parent(keep: Iterable[int], *, new_session: bool) -> None:
    """In a child just forked: a session (or else a process group) of its own, so a signal to
    the parent's group does not reach it; default signal handlers; no event loop; and only
    the descriptors 0, 1, 2 and `keep` open."""
    if new_session:
        os.setsid()
    else:
        os.setpgid(0, 0)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the parent's event loop's: closed below
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    kept = sorted({0, 1, 2, *keep})
    for low, high in zip(kept, [*kept[1:], os.sysconf("SC_OPEN_MAX")], strict=True):
        os.closerange(low + 1, high)
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        asyncio.events._set_running_loop(None)  # the parent's loop runs on in the parent only


def end_forked_child(code: int) -> NoReturn:
    """Exit a forked child with `code` once its output is out, running none of what it
    inherited from its parent for an exit (atexit functions, finalizers)."""
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def reap_child(pid: int, timeout: float) -> None:
    """Wait for child `pid` to end, woken by its end (pidfd), not by polling; SIGKILL it
    after `timeout`."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already, or no pidfd: waitpid below decides
        pidfd = -1
    if pidfd >= 0:
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not ready:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
