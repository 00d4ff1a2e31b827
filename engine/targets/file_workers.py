"""Worker processes for local instances' file work (DownloadBundle and Install).

A runner deploying to many local instances would otherwise copy and remove their files in
threads of its own process, all taking turns at one interpreter lock with the event loop that
runs the hooks. The pool forks a few workers (one per CPU) when the first file step comes,
each in its own process group; a step is sent to an idle worker as one pickled frame on a
pipe and its note (or the error that ended it) comes back as one frame on another.

- A stop of a running step is seen by Install before its next change (a shared flag per
  worker) and waited for, as in a thread; a step still running after the kill grace period
  has its worker's group killed. Either way a stopped step has nothing left running.
- A worker that dies mid-step fails that step, naming the worker and its exit; Install's
  cleanup list, written before each change, lets the next deployment remove what it placed.
  The pool goes on with the workers left, and with threads once none is.
- `close` ends every worker; a runner killed outright leaves none either: each worker exits at
  the end of its job pipe, and the runner's watchdog is told of their groups.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.forked import end_forked_child, fork, leave_parent
from engine.frames import framed, read_frame, take_frames, write_all
from engine.host import agent, extract
from engine.host.hooks import DEFAULT_KILL_GRACE_SECONDS

if TYPE_CHECKING:
    from engine.targets.local import ProcessWatch

_STOP = struct.Struct("!q")  # the number of the job a worker is asked to stop
CLOSE_WAIT_SECONDS = 5.0


_LOST_ADVICE = {
    agent.INSTALL: "Nothing was recorded as installed; what Install placed is in the instance's "
    "cleanup list, so the next deployment removes it. ",
    agent.DOWNLOAD_BUNDLE: "The partly unpacked revision is never used: the next deployment "
    "unpacks it again. ",
}


class WorkerLost(OSError):
    """A worker process ended while it ran a step."""


@dataclass
class _Job:
    number: int
    step: str
    command: dict[str, Any]
    deployment_dir: str
    future: asyncio.Future[str]
    worker: _Worker | None = None


@dataclass
class _Worker:
    pid: int
    jobs: int  # the write end of its job pipe
    results: int  # the read end of its result pipe
    stop: mmap.mmap
    received: bytearray = field(default_factory=bytearray)
    job: _Job | None = None


class FileWorkers:
    """A pool of forked worker processes running `agent.file_step`; `run` is an
    `agent.FileWork`."""

    def __init__(self, size: int | None = None, watch: ProcessWatch | None = None) -> None:
        self.size = configured_size() if size is None else size  # 0: the agent's threads
        self.watch = watch
        self._workers: list[_Worker] = []
        self._idle: collections.deque[_Worker] = collections.deque()
        self._queue: collections.deque[_Job] = collections.deque()
        self._numbers = 0
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (each also its process group)."""
        return [worker.pid for worker in self._workers]

    async def run(self, step: str, command: dict[str, Any], deployment_dir: str) -> str:
        if not self._start():
            return await agent.threaded_file_work(step, command, deployment_dir)
        self._numbers += 1
        loop = asyncio.get_running_loop()
        job = _Job(self._numbers, step, command, deployment_dir, loop.create_future())
        self._queue.append(job)
        self._dispatch()
        try:
            return await asyncio.shield(job.future)
        except _NoWorkers:
            return await agent.threaded_file_work(step, command, deployment_dir)
        except asyncio.CancelledError:
            if job.worker is None and not job.future.done():  # still queued: it never runs
                self._queue.remove(job)
                job.future.cancel()
                raise
            kill = None
            if job.worker is not None and not job.future.done():
                job.worker.stop[:] = _STOP.pack(job.number)
                grace = float(command.get("kill_grace_seconds") or DEFAULT_KILL_GRACE_SECONDS)
                kill = loop.call_later(grace, _kill, job.worker)
            while not job.future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(job.future)  # a second stop: the step ends first
            if kill is not None:
                kill.cancel()
            if not job.future.cancelled():
                job.future.exception()  # retrieved: the stop is what is reported
            raise

    def _start(self) -> bool:
        """Fork the workers on first use; False when there are none to use (closed, or this
        process holds other threads, which a forked child could find holding locks)."""
        if not self._started:
            self._started = True
            if not self._closed and threading.active_count() == 1 and hasattr(os, "fork"):
                self._loop = asyncio.get_running_loop()
                for _ in range(self.size):
                    self._fork()
        return bool(self._workers)

    def _fork(self) -> None:
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        stop = mmap.mmap(-1, _STOP.size)  # anonymous and shared: both sides see one page
        pid = fork()
        if pid == 0:
            _worker_main(job_read, result_write, stop)  # never returns
        os.close(job_read)
        os.close(result_write)
        os.set_blocking(result_read, False)
        worker = _Worker(pid, job_write, result_read, stop)
        self._workers.append(worker)
        self._idle.append(worker)
        assert self._loop is not None
        self._loop.add_reader(result_read, self._readable, worker)
        if self.watch is not None:
            self.watch.watch(pid)

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            job = self._queue.popleft()
            worker = self._idle.popleft()
            frame = pickle.dumps(
                (
                    job.number,
                    job.step,
                    job.command,
                    job.deployment_dir,
                    agent.last_step(job.deployment_dir),
                ),
                pickle.HIGHEST_PROTOCOL,
            )
            job.worker, worker.job = worker, job
            try:
                write_all(worker.jobs, framed(frame))
            except OSError:  # it died idle: its end of pipe shows it next
                pass
        if self._queue and not self._workers:  # every worker is gone: threads take over
            while self._queue:
                self._queue.popleft().future.set_exception(_NoWorkers())

    def _readable(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.results, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(worker)
            return
        worker.received += data
        for frame in take_frames(worker.received):
            self._finished(worker, frame)

    def _finished(self, worker: _Worker, frame: bytes) -> None:
        number, ok, value = pickle.loads(frame)
        job, worker.job = worker.job, None
        self._idle.append(worker)
        if job is not None and job.number == number and not job.future.done():
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        self._dispatch()

    def _lost(self, worker: _Worker) -> None:
        """The worker's end of the result pipe closed: it died (or was killed)."""
        self._forget(worker)
        status = _reap(worker.pid, CLOSE_WAIT_SECONDS)
        job = worker.job
        if job is not None and not job.future.done():
            job.future.set_exception(
                WorkerLost(
                    f"The agent worker process {worker.pid} running {job.step} in "
                    f"{job.deployment_dir} ended ({status}) before the step finished. "
                    + _LOST_ADVICE.get(job.step, "")
                    + "Deploy again"
                    + (
                        ", and look for what killed it (out of memory?)."
                        if "signal" in status
                        else "."
                    )
                )
            )
        self._dispatch()

    def _forget(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(worker.results)
        for fd in (worker.jobs, worker.results):
            with contextlib.suppress(OSError):
                os.close(fd)
        worker.stop.close()
        if self.watch is not None:
            self.watch.forget(worker.pid)

    def hang_up(self) -> None:
        """Close every worker's job pipe: an idle one exits at its end (close waits for it)."""
        self._closed = True
        for worker in self._workers:
            if worker.jobs >= 0:
                with contextlib.suppress(OSError):
                    os.close(worker.jobs)
                worker.jobs = -1

    def close(self) -> None:
        """End every worker: an idle one exits at the end of its job pipe; one still busy
        (only when the runner is being torn down) is killed with its group."""
        workers = list(self._workers)
        self.hang_up()
        for worker in workers:
            if worker.job is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.pid, signal.SIGKILL)
            _reap(worker.pid, CLOSE_WAIT_SECONDS)
            self._forget(worker)


SIZE_VARIABLE = "DEPLOYDECK_FILE_WORKERS"


def configured_size() -> int:
    """How many file workers a runner forks: DEPLOYDECK_FILE_WORKERS (0: none, the agent's
    threads do the file work, e.g. to compare the two), else one per CPU, at most four."""
    default = max(1, min(4, os.cpu_count() or 1))
    value = os.environ.get(SIZE_VARIABLE, "").strip()
    if not value:
        return default
    if value.isdigit():
        return int(value)
    print(
        f"deploydeck runner: {SIZE_VARIABLE}={value!r} is not a whole number of worker "
        f"processes (0 for none); using {default}",
        file=sys.stderr,
    )
    return default


class _NoWorkers(Exception):
    """No worker is left to take a queued step."""


def _kill(worker: _Worker) -> None:
    """A stopped step still running after the grace period (a long copy, a tool that hangs):
    its worker's group is killed, as a hook's would be."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)


def _reap(pid: int, wait: float) -> str:
    """Wait for a worker to end (killing its group past `wait` seconds); how it ended. Woken
    by its end (a pidfd) where there is one, else polling."""
    deadline = time.monotonic() + wait
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfds here, or gone: waitpid below tells
        pidfd = -1
    try:
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return "already reaped"
            if done:
                if os.WIFSIGNALED(status):
                    return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
                return f"exit status {os.waitstatus_to_exitcode(status)}"
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                deadline, left = float("inf"), REAP_POLL_SECONDS
            if pidfd >= 0:
                select.select([pidfd], [], [], min(left, 1.0))
            else:
                time.sleep(REAP_POLL_SECONDS)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


REAP_POLL_SECONDS = 0.005


def _worker_main(jobs: int, results: int, stop: mmap.mmap) -> None:
    """A worker's life: run each job that arrives until the end of its job pipe."""
    code = 0
    try:
        # its own group (a terminal's Ctrl-C reaches the runner only), none of its files
        leave_parent((jobs, results), new_session=False)
        gc.freeze()  # leave the pages shared with the runner as they are
        extract.remember_directory_scans()  # its bundles are snapshots: one scan each
        while True:
            frame = read_frame(jobs)
            if frame is None:
                break
            number, step, command, deployment_dir, last = pickle.loads(frame)
            agent.recall_step(deployment_dir, last)
            reply: tuple[int, bool, object]
            try:
                note = agent.file_step(step, command, deployment_dir, _stop_asked(stop, number))
                reply = (number, True, note)
            except Exception as error:  # carried back to the runner as the step's error
                reply = (number, False, _portable(error))
            out = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
            write_all(results, framed(out))
    except BaseException:
        code = 1
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        end_forked_child(code)


def _stop_asked(stop: mmap.mmap, number: int) -> Callable[[], bool]:
    """Whether the runner asked to stop job `number` (Install asks before each change)."""
    return lambda: _STOP.unpack(stop[:])[0] == number


def _portable(error: Exception) -> Exception:
    """`error` as it survives a trip through pickle, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        trace = "".join(traceback.format_exception(error))
        return RuntimeError(f"{type(error).__name__}: {error}\n{trace}")
