"""Measuring whole process trees for the benchmarks: wall time, CPU time and peak memory of a
command and of every process it leaves behind (deploydeck's detached runner), and how busy the
machine was meanwhile.

`deploydeck create-deployment --wait` starts the deployment's runner in a new session and does
not wait for it; the runner outlives nothing but is nobody's child once the command exits. This
process makes itself a child subreaper (Linux prctl), so such orphans are re-parented here and
reaped with os.wait4, which gives their CPU time (and that of the hooks they waited for) and
their peak RSS.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compile_checkout() -> None:
    """Bring the checkout's bytecode up to date, as the install step does: where
    PYTHONDONTWRITEBYTECODE is set, a module edited since would be compiled again by every
    measured process, and its start-up measured with it."""
    import compileall

    for package in ("engine", "tui"):
        compileall.compile_dir(REPO / package, quiet=1)


# GNU time reports the peak RSS of the command it starts; see `measure` for why we need it.
GNU_TIME = "/usr/bin/time"
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Sample:
    """One measured command and the processes it left running."""

    wall: float  # seconds from spawning the command to reaping the last process of the run
    user: float  # CPU seconds of every process of the run (and what each waited for)
    sys: float
    max_rss_kb: int  # largest resident set of any one process of the run
    command_wall: float  # seconds from spawning the command to its exit
    command_cpu: float  # the command and what it waited for, without the orphans it left
    command_rss_kb: int  # the command's own peak RSS
    orphans: int = 0  # processes the command left behind, reaped here (deploydeck: the runner)
    load_before: float = 0.0  # 1-minute load average when it started
    load_after: float = 0.0  # and when it ended
    busy_before: float | None = None  # how busy the CPUs were just before (0 to 1)
    other_cpu: float | None = None  # CPU seconds the rest of the machine used during the run
    context_switches: int = 0  # voluntary + involuntary, of every process of the run

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def noisy(self, limit: float) -> bool:
        """Other processes used more than `limit` of a CPU on average during the run."""
        return self.other_cpu is not None and self.other_cpu > limit * self.wall


def become_subreaper() -> None:
    """Orphaned descendants (a detached runner) are re-parented to this process."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def has_gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def measure(
    argv: list[str],
    env: dict[str, str] | None,
    log: Path,
    settle_seconds: float = 0.0,
    cwd: Path = REPO,
) -> tuple[Sample, int]:
    """Run `argv` as a child of this process until it and every process it left have ended;
    the Sample and the command's exit code.

    CPU comes from os.wait4, which counts a process and every descendant it reaped. Peak RSS
    cannot come from wait4 for the command: on Linux a child's ru_maxrss starts at the RSS of
    the process that spawned it (exec keeps the pre-exec high-water mark), so every child of this
    Python process would show at least its ~40 MB. GNU time, a ~1 MB C program, spawns the
    command instead and reports the command's own ru_maxrss. An orphan's ru_maxrss (the runner)
    is taken from wait4: it includes its parent's (the command's) RSS when it was spawned.
    With `settle_seconds`, the run first waits (at most that long) for a quiet machine.
    """
    become_subreaper()
    rss_file = log.with_suffix(".rss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *argv] if has_gnu_time() else argv
    os.sync()  # write back earlier runs' files now, not during this run
    busy = wait_for_quiet(settle_seconds) if settle_seconds > 0 else None
    load_before = os.getloadavg()[0]
    machine_before = busy_cpu_seconds()
    with log.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(
            wrapped,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group, so an interrupt can end it all
        )
        try:
            _, status, usage = os.wait4(child.pid, 0)
            command_wall = time.perf_counter() - start
            orphans = reap_orphans()
        except BaseException:  # Ctrl-C: end the run too, or it writes on into removed folders
            end_children(child.pid)
            raise
        wall = time.perf_counter() - start
    machine_after = busy_cpu_seconds()
    child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
    command_rss = usage.ru_maxrss
    if has_gnu_time():
        # GNU time writes "Command exited with non-zero status N" first when the command fails.
        command_rss = int(rss_file.read_text().split()[-1])
    user = usage.ru_utime + sum(o.ru_utime for o in orphans)
    system = usage.ru_stime + sum(o.ru_stime for o in orphans)
    switches = sum(u.ru_nvcsw + u.ru_nivcsw for u in (usage, *orphans))
    other = None
    if machine_before is not None and machine_after is not None:
        other = max(0.0, machine_after - machine_before - user - system)
    sample = Sample(
        wall=wall,
        user=user,
        sys=system,
        max_rss_kb=max([command_rss, *(o.ru_maxrss for o in orphans)]),
        command_wall=command_wall,
        command_cpu=usage.ru_utime + usage.ru_stime,
        command_rss_kb=command_rss,
        orphans=len(orphans),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        busy_before=busy,
        other_cpu=other,
        context_switches=switches,
    )
    return sample, code


def reap_orphans() -> list[os.struct_rusage]:
    """Wait for every remaining child (orphans re-parented here); their resource usage."""
    usages = []
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return usages
        usages.append(usage)


def end_children(pgid: int) -> None:
    """End the command's process group and every orphan re-parented here, then reap them."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    for pid in children_of(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGTERM)
    reap_orphans()


def children_of(parent: int) -> list[int]:
    """Processes whose parent is `parent`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid ...: comm may hold spaces and parentheses
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found.append(int(entry))
    return found


def busy_cpu_seconds() -> float | None:
    """CPU seconds all CPUs have been busy since boot (/proc/stat); None where unknown."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system ... steal
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


QUIET_BUSY = 0.15  # a measured run starts once the CPUs are at most 15% busy, or after a while


def wait_for_quiet(seconds: float) -> float | None:
    """Wait until the CPUs are nearly idle (the machine may be shared), at most `seconds`.
    Returns the busy fraction seen last, kept in the sample so noisy runs show in the JSON."""
    deadline = time.monotonic() + seconds
    cpus = os.cpu_count() or 1
    while True:
        before = busy_cpu_seconds()
        time.sleep(0.5)
        after = busy_cpu_seconds()
        if before is None or after is None:
            return None
        busy = (after - before) / 0.5 / cpus
        if busy <= QUIET_BUSY or time.monotonic() >= deadline:
            return busy


def deploydeck_command() -> list[str]:
    """The `deploydeck` program of this interpreter's environment, as a user runs it."""
    script = Path(sys.executable).with_name("deploydeck")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tui.cli"]


def interrupted(signum: int, frame: object) -> None:
    """SIGTERM and SIGINT unwind like Ctrl-C: the running processes are ended, folders removed."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def catch_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, interrupted)
