"""A process that starts a runner's local hook scripts, so its event loop never waits for one.

Starting a process from the runner's event loop holds the loop (and, on Python 3.11, the
interpreter lock) from vfork until the script has exec'd: about 0.05 ms of CPU but, with the
machine busy, a millisecond or more of waiting for the child to be scheduled, per script. A
runner deploying to many local instances therefore starts one launcher (forked from the
runner and named dd-launcher; where it cannot fork, `python -m engine.targets.hook_launcher`),
in its own session and process group, its group told to the runner's watchdog. It asks the
launcher, one pickled frame each on a pipe, to start each script; the launcher answers with
the script's pid (or the OSError that prevented it) and, when the script exits, its exit
status.

The scripts are the launcher's children and otherwise what `hooks.run_script` makes them:
stdin closed, output appended to its capture files, a session and process group of their own.
The launcher is their subreaper: what a script leaves running when it exits (a daemon that
left its groups, `(setsid cmd &)`) becomes the launcher's child, not init's. So with each exit
status it can say whether it holds any such orphan; when it holds none and the script's
groups are empty, nothing of the script lives on, and the runner skips the /proc scans that
would otherwise look for what it left (hooks.run_script).
Stops and timeouts end their groups as before. The launcher exits at the end of its request
pipe (the runner closed it, or died: the watchdog ends what was running). If the launcher is
gone, scripts are started by the runner itself again; those it was running report no status.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

from engine.frames import framed, read_frame, take_frames, write_all

if TYPE_CHECKING:
    import asyncio

    from engine.targets.local import ProcessWatch

# asyncio is imported where the runner's side uses it: the launcher process itself never does

CLOSE_WAIT_SECONDS = 5.0
PROCESS_NAME = b"dd-launcher"  # a forked launcher's /proc/PID/comm, what ps shows


class LauncherLost(OSError):
    """The launcher process ended: a script's start or exit status cannot be known."""


class LaunchedScript:
    """A script the launcher started: what run_script needs of a process."""

    def __init__(self, pid: int, exited: asyncio.Future[tuple[int, bool]]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        # once it exited: whether the launcher then held an orphan of some script (None: unknown)
        self.orphans: bool | None = None
        self._exited = exited

    async def wait(self) -> int | None:
        """Its return code; None if the launcher went first (then once the script is gone)."""
        import asyncio

        try:
            self.returncode, self.orphans = await asyncio.shield(self._exited)
        except LauncherLost:
            await _gone(self.pid)
            return None
        return self.returncode


async def _gone(pid: int) -> None:
    """Until process `pid` (not this process's child) has exited."""
    import asyncio

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class HookLauncher:
    """The runner's side: starts the launcher when the first script is to start."""

    def __init__(self, watch: ProcessWatch | None = None) -> None:
        self.watch = watch
        self.pid = 0  # the launcher's, once started
        self._requests = -1  # our ends of its pipes
        self._answers = -1
        self._popen: subprocess.Popen[bytes] | None = None  # a launcher started, not forked
        self.lost = False
        self._next = 0
        self._starting: dict[int, asyncio.Future[int]] = {}  # request -> the script's pid
        # pid -> its return code, and whether the launcher held orphans when it exited
        self._exits: dict[int, asyncio.Future[tuple[int, bool]]] = {}
        self._early: dict[int, tuple[int, bool]] = {}  # exits read before their start's answer
        self._buffer = bytearray()  # answers read, the last perhaps in part
        self._reading = False  # the event loop watches its answers
        # requests the pipe had no room for yet: written as the launcher reads, so a burst of
        # starts never holds the event loop while the launcher catches up
        self._outgoing = bytearray()
        self._writing = False  # the event loop waits for room in the request pipe

    @property
    def usable(self) -> bool:
        return not self.lost

    async def start(
        self, argv: list[str], cwd: str, env: dict[str, str], stdout: str, stderr: str
    ) -> LaunchedScript:
        """Start a script through the launcher; raises the OSError that prevented it."""
        import asyncio

        self._connect()
        loop = asyncio.get_running_loop()
        self._next += 1
        number = self._next
        started: asyncio.Future[int] = loop.create_future()
        self._starting[number] = started
        frame = pickle.dumps((number, argv, cwd, env, stdout, stderr), pickle.HIGHEST_PROTOCOL)
        self._outgoing += framed(frame)
        self._send()
        pid = await started
        exited = self._exits.setdefault(pid, loop.create_future())
        if pid in self._early:
            exited.set_result(self._early.pop(pid))
        return LaunchedScript(pid, exited)

    def prestart(self) -> None:
        """Start the launcher process now, so it is ready when the first script is due: forked
        where this process has no other thread (a child could find a lock held), else a new
        interpreter."""
        if self.pid or self.lost:
            return
        try:
            if threading.active_count() == 1 and hasattr(os, "fork"):
                self.pid, self._requests, self._answers = _fork_launcher()
            else:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "engine.targets.hook_launcher"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,  # a signal to the runner's group must not reach it
                )
                assert self._popen.stdin is not None and self._popen.stdout is not None
                self.pid = self._popen.pid
                self._requests = self._popen.stdin.fileno()
                self._answers = self._popen.stdout.fileno()
        except OSError as error:
            self._lose(f"it could not start ({error})")
            return
        if self.watch is not None:
            self.watch.watch(self.pid)

    def _connect(self) -> None:
        """Start the launcher if need be, and read its answers in the event loop."""
        import asyncio

        self.prestart()
        if not self.pid or self.lost:
            raise LauncherLost("the hook launcher could not start")
        if not self._reading:
            os.set_blocking(self._answers, False)
            os.set_blocking(self._requests, False)
            asyncio.get_running_loop().add_reader(self._answers, self._readable)
            self._reading = True

    def _send(self) -> None:
        """Write what the request pipe has room for; wait for room for the rest."""
        import asyncio

        try:
            written = os.write(self._requests, self._outgoing)
        except BlockingIOError:
            written = 0
        except OSError as error:
            self._lose(f"its request pipe failed ({error})")
            return
        del self._outgoing[:written]
        loop = asyncio.get_running_loop()
        if self._outgoing and not self._writing:
            loop.add_writer(self._requests, self._send)
            self._writing = True
        elif not self._outgoing and self._writing:
            loop.remove_writer(self._requests)
            self._writing = False

    def _readable(self) -> None:
        try:
            data = os.read(self._answers, 65536)
        except BlockingIOError:
            return
        except OSError as error:
            self._lose(f"its answer pipe failed ({error})")
            return
        if not data:
            self._lose("it exited")
            return
        self._buffer += data
        for frame in take_frames(self._buffer):
            self._answer(pickle.loads(frame))

    def _answer(self, answer: tuple[Any, ...]) -> None:
        kind = answer[0]
        if kind == "started":
            _, number, pid = answer
            future = self._starting.pop(number)
            if not future.done():
                future.set_result(pid)
        elif kind == "failed":
            _, number, errno, strerror, filename = answer
            future = self._starting.pop(number)
            if not future.done():
                future.set_exception(OSError(errno, strerror, filename))
        elif kind == "exited":
            _, pid, code, orphans = answer
            exited = self._exits.pop(pid, None)
            if exited is None:
                self._early[pid] = (code, orphans)
            elif not exited.done():
                exited.set_result((code, orphans))

    def _lose(self, why: str) -> None:
        """The launcher is gone: what waits on it fails; later scripts start in the runner."""
        if self.lost:
            return
        self.lost = True
        error = LauncherLost(f"the hook launcher (pid {self.pid}) is gone: {why}")
        print(f"deploydeck runner: {error}; scripts start in the runner", file=sys.stderr)
        waiting: list[asyncio.Future[Any]] = [*self._starting.values(), *self._exits.values()]
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        self._starting.clear()
        self._exits.clear()
        self._close_pipes()

    def _close_pipes(self) -> None:
        import asyncio

        if self._reading:
            self._reading = False
            with contextlib.suppress(RuntimeError):  # the loop is gone already
                asyncio.get_running_loop().remove_reader(self._answers)
        if self._writing:
            self._writing = False
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_writer(self._requests)
        self._outgoing.clear()
        if self._popen is not None:
            for pipe in (self._popen.stdin, self._popen.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        else:
            for fd in (self._requests, self._answers):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._requests = self._answers = -1

    def hang_up(self) -> None:
        """Close its pipes: it exits at their end (close waits for it)."""
        if self.pid:
            self._close_pipes()

    def close(self) -> None:
        """The runner ends: the launcher exits at the end of its request pipe, and is waited
        for (up to CLOSE_WAIT_SECONDS, then killed)."""
        if not self.pid:
            return
        self._close_pipes()
        if self._popen is not None:
            try:
                self._popen.wait(CLOSE_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        else:
            from engine.forked import reap_child

            reap_child(self.pid, CLOSE_WAIT_SECONDS)
        if self.watch is not None:
            self.watch.forget(self.pid)
        self.pid, self._popen = 0, None


def _fork_launcher() -> tuple[int, int, int]:
    """The launcher as a forked child in a session of its own: (its pid, the write end of its
    request pipe, the read end of its answer pipe). It keeps the runner's stdout and stderr
    (the run's log) and no other descriptor of the runner's."""
    from engine.forked import end_forked_child, fork, leave_parent

    requests, to_launcher = os.pipe()
    from_launcher, answers = os.pipe()
    pid = fork()
    if pid == 0:
        code = 1
        try:
            leave_parent((requests, answers), new_session=True)
            with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:
                comm.write(PROCESS_NAME)
            code = serve(requests, answers)
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            end_forked_child(code)
    os.close(requests)
    os.close(answers)
    return pid, to_launcher, from_launcher


# ---- the launcher process ----------------------------------------------------------------------


def _return_code(status: int) -> int:
    """What subprocess gives as returncode: the exit code, or minus the signal."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Orphans of this process's descendants become its children (Linux's
    PR_SET_CHILD_SUBREAPER), not init's; False where that cannot be."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _children() -> set[int] | None:
    """This process's children (those of each of its threads), adopted orphans included;
    None where /proc cannot tell."""
    found: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children", "rb") as listed:
                found.update(int(pid) for pid in listed.read().split())
    except (OSError, ValueError):
        return None
    return found


def serve(requests: int, answers: int) -> int:
    """Start each requested script; answer its pid and, later, its exit status and whether
    this process then held an orphan of any script."""
    subreaper = _become_subreaper()
    lock = threading.Lock()  # one answer written at a time
    started = threading.Event()
    running: dict[int, subprocess.Popen[bytes]] = {}

    def answer(message: tuple[Any, ...]) -> None:
        data = framed(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        with lock:
            write_all(answers, data)

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                started.wait()
                started.clear()
                continue
            with lock:
                popen = running.pop(pid, None)
                if popen is None:
                    continue  # an orphan this process adopted and outlived: no script's
                # every script started is in `running` while the lock is free; an orphan of
                # the script just reaped was adopted before its exit could be waited for
                children = _children() if subreaper else None
                orphans = children is None or bool(children - running.keys())
            code = _return_code(status)
            popen.returncode = code  # reaped here: the Popen object must not wait again
            try:
                answer(("exited", pid, code, orphans))
            except OSError:
                return

    threading.Thread(target=reap, daemon=True).start()
    while True:
        frame = read_frame(requests)
        if frame is None:
            return 0
        number, argv, cwd, env, stdout, stderr = pickle.loads(frame)
        try:
            out = os.open(stdout, os.O_WRONLY | os.O_APPEND)
            try:
                err = os.open(stderr, os.O_WRONLY | os.O_APPEND)
                try:
                    with lock:  # registered before the reaper can see it exit
                        popen = subprocess.Popen(
                            argv,
                            stdin=subprocess.DEVNULL,
                            stdout=out,
                            stderr=err,
                            cwd=cwd,
                            env=env,
                            start_new_session=True,
                        )
                        running[popen.pid] = popen
                finally:
                    os.close(err)
            finally:
                os.close(out)
        except OSError as error:
            answer(("failed", number, error.errno, error.strerror, error.filename))
            continue
        started.set()
        answer(("started", number, popen.pid))


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.fileno(), sys.stdout.fileno()))
