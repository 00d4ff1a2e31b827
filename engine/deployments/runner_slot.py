"""A runner forked before its deployment exists.

`create-deployment` forks one first thing, before it parses its command line or imports the
engine (tui/cli.py `main`): the child imports the runner's modules while the command loads the
workspace, checks and records the revision and creates the deployment, on the other CPU.
Given the deployment, the child runs it as a runner forked at that moment would; the
command's start-up and the runner's no longer add up.

The child holds nothing of the command's but its standard streams. It waits for one job on a
pipe: the job, or the pipe's end (the command created nothing, or died), which ends it. Until
it is a runner in a session of its own, Ctrl-C is the command's to handle. This module
imports only the standard library: it is imported before the engine.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from engine.workspace import Workspace

# imported by the child while it waits: the runner, the strategy most deployments use, and
# what a runner of local instances imports once it runs (its file workers, hook launcher,
# wake-up line, and the appspec's encoding)
WARM_MODULES = (
    "engine.deployments.runner",
    "engine.deployments.inplace",
    "engine.targets.file_workers",
    "engine.targets.hook_launcher",
    "engine.deployments.wake",
    "encodings.utf_8_sig",
)


class ForkedRunner:
    """A runner forked from the process that created its deployment (by fork_runner, or a
    slot given its job): `poll` as Popen's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def fork_holding_sigint() -> int:
    """os.fork(), with Ctrl-C held back across it: a SIGINT that comes meanwhile reaches the
    parent once the fork is done, and the child starts with SIGINT ignored (whoever forked it
    decides when it takes them), so none interrupts it while Python still sets it up after
    the fork (which would print a traceback on the command's terminal)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a SIGINT held back is dropped
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid


class RunnerSlot:
    """The command's side of a child waiting to become a deployment's runner."""

    def __init__(self, pid: int, job_pipe: int) -> None:
        self.pid = pid
        self._job_pipe = job_pipe
        self._taken = False  # a job was handed over: the child is a runner now

    @classmethod
    def fork(cls) -> RunnerSlot | None:
        """A waiting child, or None where this process cannot fork safely (other threads,
        which a child could find holding locks; no fork on this system)."""
        if not hasattr(os, "fork") or threading.active_count() != 1:
            return None
        read, write = os.pipe()
        pid = fork_holding_sigint()
        if pid == 0:
            os.close(write)
            _wait_for_job(read)
        os.close(read)
        return cls(pid, write)

    def start(
        self, workspace: Workspace, deployment_id: str, *, resume: bool, speed: float, log: Path
    ) -> int:
        """Hand the child its deployment; its pid. OSError when the child is gone (the
        caller starts a runner another way)."""
        job = pickle.dumps(
            (workspace, deployment_id, resume, speed, log), protocol=pickle.HIGHEST_PROTOCOL
        )
        view = memoryview(job)
        while view:
            view = view[os.write(self._job_pipe, view) :]
        os.close(self._job_pipe)
        self._job_pipe, self._taken = -1, True
        return self.pid

    def release(self) -> None:
        """Unless a job was handed over: end the child (it has done nothing yet), reap it."""
        if self._taken or self.pid == 0:
            return
        with contextlib.suppress(OSError):
            os.close(self._job_pipe)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid = 0


# the slot forked first thing in a command line's life (tui/cli.py), until its command takes it
_started: RunnerSlot | None = None


def fork_at_start() -> None:
    """Fork a slot now, for the command this process is about to run to take (unless one
    waits for it already)."""
    global _started
    if _started is None:
        _started = RunnerSlot.fork()


def take_started() -> RunnerSlot | None:
    """The slot fork_at_start made (the caller now owns it), or None."""
    global _started
    slot, _started = _started, None
    return slot


def release_started() -> None:
    """End the slot fork_at_start made, unless a command took it."""
    slot = take_started()
    if slot is not None:
        slot.release()


def _wait_for_job(pipe: int) -> NoReturn:
    """The child: import the runner, read the job, run it; exit quietly without one."""
    try:
        import importlib

        for module in WARM_MODULES:
            importlib.import_module(module)
        from engine import dataclass_cache

        dataclass_cache.save()  # what the runner's modules compiled, as their bytecode
        chunks = []
        while chunk := os.read(pipe, 1 << 16):
            chunks.append(chunk)
        os.close(pipe)
        if not chunks:
            os._exit(0)
        workspace, deployment_id, resume, speed, log = pickle.loads(b"".join(chunks))
    except BaseException:  # nothing ran: a command still writing finds the pipe closed
        os._exit(1)
    from engine.deployments.runner import run_forked

    run_forked(workspace, deployment_id, resume=resume, speed=speed, log=log)
