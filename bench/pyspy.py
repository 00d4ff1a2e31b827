"""py-spy profiles of a deploydeck command and the processes it starts, summarised per part.

    .venv/bin/python -m bench.pyspy FILE [--top 15]      # summarise a raw profile again

`record` runs a command under `py-spy record --subprocesses --threads --native --format raw`
(py-spy must be installed in the environment: `.venv/bin/pip install py-spy`). py-spy samples
only threads that are running, not waiting, so shares are of CPU-ish time. `print_summary`
splits the samples into the follower (the `deploydeck` command itself), the runner's event-loop
thread (the runner: scheduling, journal, hooks' processes), the runner's other threads (the
executor threads where the agent's DownloadBundle and Install run), its file workers, its hook
launcher and its watchdog, and lists each part's top
functions by own samples (the Python function on top of the stack) and by total samples (the
function anywhere on the stack).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import measure

RATE = 100  # samples per second
PARTS = (
    "follower",
    "runner loop",
    "agent threads",
    "file workers",
    "hook launcher",
    "watchdog",
    "other",
)
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    if found.exists():
        return str(found)
    which = shutil.which("py-spy")
    if which is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return which


def record(argv: list[str], out: Path, log: Path, cwd: Path) -> int:
    """Run `argv` under py-spy (it and its subprocesses, each thread); raw stacks to `out`."""
    spy = [py_spy(), "record", "--subprocesses", "--threads", "--native"]
    spy += ["--rate", str(RATE), "--format", "raw", "--output", str(out), "--"]
    _, code = measure([*spy, *argv], None, log, cwd=cwd)
    return code


# Native frames on top of a Python function that mean the thread is blocked, not running: an
# idle executor thread waiting for work, a lock or condition wait. py-spy's idle detection
# misses these with --native.
BLOCKED = ("PyThread_acquire_lock_timed", "lock_PyThread_acquire_lock", "_queue_SimpleQueue_get")
IDLE_WORKER = "_read_exactly (engine/targets/file_workers.py)"
# Any other condition wait on top of a Python function is the GIL being taken back after a
# system call (take_gil is inlined, so its own name does not show).
GIL_WAIT = ("take_gil", "pthread_cond_timedwait", "pthread_cond_wait")


@dataclass(frozen=True)
class Stack:
    part: str
    frames: tuple[str, ...]  # outermost first, "function (file)" without line numbers
    count: int

    @property
    def native_top(self) -> tuple[str, ...]:
        """The native frames above the innermost Python function."""
        for index in range(len(self.frames) - 1, -1, -1):
            if ".py)" in self.frames[index]:
                return self.frames[index + 1 :]
        return self.frames

    @property
    def blocked(self) -> bool:
        if self.frames and own_function(self.frames).startswith(IDLE_WORKER):
            return True  # a file worker waiting for its next job
        return any(f.startswith(BLOCKED) for f in self.native_top)

    @property
    def gil_wait(self) -> bool:
        return not self.blocked and any(f.startswith(GIL_WAIT) for f in self.native_top)


def short_file(path: str) -> str:
    """A frame's file without the environment's prefix: engine/host/agent.py, asyncio/events.py."""
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return re.sub(r"^wt-[^/]+/|^main/", "", path)


def parse(path: Path) -> Iterator[Stack]:
    """The samples of a raw (collapsed) py-spy file, each with its part."""
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        processes: list[tuple[int, str]] = []
        thread = None
        frames = []
        for item in stack.split(";"):
            process = re.match(r'^process (\d+):"(.*)"$', item)
            if process and thread is None:
                processes.append((int(process.group(1)), process.group(2)))
                continue
            threads = re.match(r"^thread \((0x[0-9A-Fa-f]+|\d+)\)(: .*)?$", item)
            if threads and thread is None:
                thread = int(threads.group(1), 0)
                continue
            frame = FRAME.match(item)
            if frame:
                frames.append(f"{frame.group('function')} ({short_file(frame.group('file'))})")
            else:
                frames.append(item)
        yield Stack(part_of(processes, thread, frames), tuple(frames), int(count))


def part_of(processes: list[tuple[int, str]], thread: int | None, frames: list[str]) -> str:
    if not processes:
        return "other"
    if any("_worker_main (engine/targets/file_workers.py)" in f for f in frames):
        return "file workers"
    if any(
        f.startswith(("serve (", "reap (")) and "engine/targets/hook_launcher.py" in f
        for f in frames
    ):
        return "hook launcher"  # its process (the runner's side of it runs in the loop)
    if any("serve (engine/deployments/watchdog.py)" in f for f in frames):
        return "watchdog"
    pid, command = processes[-1]
    runner_frames = ("fork_runner (", "run_forked (", "run_deployment (")  # a forked runner's
    forked = any(f.startswith(runner_frames) for f in frames)
    if not forked and "engine.deployments.runner" not in command:
        return "follower"
    if thread == pid:
        return "runner loop"
    if any("concurrent/futures/thread.py" in f for f in frames):
        return "agent threads"
    return "other"


def own_function(frames: Sequence[str]) -> str:
    """The Python function on top of the stack (native frames above it belong to it)."""
    for frame in reversed(frames):
        if ".py)" in frame:
            return frame
    return frames[-1] if frames else "?"


def print_summary(path: Path, top: int) -> None:
    """Per part: its share of the samples, then its top functions by own and total samples.
    Samples of blocked threads are left out (counted per part); a function's own samples
    spent waiting for the GIL are listed apart, as "[GIL] function"."""
    every = list(parse(path))
    stacks = [s for s in every if not s.blocked]
    total = sum(s.count for s in stacks) or 1
    blocked = sum(s.count for s in every) - total
    print(
        f"\n==== py-spy: {path}, {total} samples of running threads at {RATE} Hz "
        f"({blocked} more of threads blocked on a lock or queue, left out)"
    )
    for part in PARTS:
        mine = [s for s in stacks if s.part == part]
        samples = sum(s.count for s in mine)
        if not samples:
            continue
        gil = sum(s.count for s in mine if s.gil_wait)
        print(
            f"\n-- {part}: {samples} samples, {100 * samples / total:.1f}% of all; "
            f"{100 * gil / samples:.1f}% of them waiting for the GIL"
        )
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        for s in mine:
            own[("[GIL] " if s.gil_wait else "") + own_function(s.frames)] += s.count
            for frame in set(s.frames):
                if ".py)" in frame:
                    inclusive[frame] += s.count
        print("   own (top of stack)                                       % all  % part")
        for name, n in own.most_common(top):
            print(f"   {name[:60]:60} {100 * n / total:5.1f}  {100 * n / samples:5.1f}")
        print("   total (anywhere on the stack)                             % all  % part")
        for name, n in inclusive.most_common(top):
            print(f"   {name[:60]:60} {100 * n / total:5.1f}  {100 * n / samples:5.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pyspy", description="summarise a raw py-spy profile per part"
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print_summary(args.file, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
