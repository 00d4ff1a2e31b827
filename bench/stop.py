"""Stop benchmark: ending N running hooks at once, deploydeck's agent against a bare baseline,
in the same run.

    .venv/bin/python -m bench.stop [--hooks 200] [--repeat 3] [--json out.json] [--profile]
    .venv/bin/python -m bench.stop --end-to-end [--hooks 200] [--repeat 3] [--json out.json]

Each side starts N hook scripts (`sleep 300 &` then `sleep 300`: a script with a background
child), each in its own process group, waits until all are running, then ends them all and
measures the wall and CPU time (this process) until every one is gone:
- `deploydeck`: N `engine.host.hooks.run_script` tasks in one event loop (as a runner holds
  N local instances) are cancelled together, the way a stop reaches them; each ends its
  script's groups and marked processes (SIGTERM, grace, SIGKILL) and reports;
- `baseline`: the same scripts from `asyncio.create_subprocess_exec(start_new_session=True)`,
  ended with one `killpg(SIGTERM)` each, the scripts waited for and /proc read until the
  background children are gone: the least a stop can do.
Both sides wait for their scripts with pidfds, as a runner does (`use_pidfd_child_watcher`; on
Python 3.11 asyncio would otherwise hold a thread per script). Sides alternate within the
repeats; the table shows medians and the ratio deploydeck/baseline. `--profile` prints where
deploydeck's side spends its time (cProfile of the stop alone, the first run): the /proc
scans, signals and waits it makes.

`--end-to-end` measures a whole stop instead: a workspace of N local instances is deployed
(`deploydeck create-deployment`, the runner detached as for a user) with a BeforeInstall hook
that is the script above; once every hook runs, the stop is asked for, and timed from the
request until the last hook process is gone (pidfds of every one, held here):
- `request`: what `deploydeck stop-deployment` does (Engine.stop_deployment: StopRequested
  journaled, the runner woken), called here so the command's start-up is not counted;
- `sigterm`: SIGTERM to the runner;
- `baseline`: the same N scripts started by this process, one `killpg(SIGTERM)` each.
CPU is the runner's (all its threads, from /proc/PID/task/*/schedstat) plus this process's
for the request; the baseline's is this process's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import secrets
import select
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench.measure import become_subreaper, deploydeck_command, reap_orphans
from engine import events as ev
from engine.api import Engine
from engine.deployments.runner import use_pidfd_child_watcher
from engine.host.hooks import run_script
from engine.host.logs import ScriptsLog
from engine.host.processes import HOOK_RUN_VARIABLE, _process_table, group_members
from engine.workspace import load_workspace

SCRIPT = "#!/bin/sh\nsleep 300 &\nsleep 300\n"


def write_scripts(folder: Path, count: int) -> list[Path]:
    archives = []
    for n in range(count):
        archive = folder / str(n) / "archive"
        archive.mkdir(parents=True)
        script = archive / "hook.sh"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        archives.append(archive)
    return archives


async def wait_running(pgids: list[int]) -> None:
    """Until every group holds both the script and its background sleep."""
    while not all(len(group_members(pgid)) >= 2 for pgid in pgids):
        await asyncio.sleep(0.05)


async def deploydeck_side(
    archives: list[Path], profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    use_pidfd_child_watcher()
    pgids: list[int] = []
    logs = [ScriptsLog(str(a.parent / "scripts.log"), "d-BENCH", None) for a in archives]
    tasks = [
        asyncio.ensure_future(
            run_script(
                {"location": "hook.sh", "timeout": 3600},
                event="ApplicationStart",
                index=0,
                archive_dir=str(archive),
                logs_dir=str(archive.parent),
                env=dict(os.environ),
                log=log,
                on_spawn=pgids.append,
                kill_grace=5,
            )
        )
        for archive, log in zip(archives, logs, strict=True)
    ]
    while len(pgids) < len(archives):
        await asyncio.sleep(0.05)
    await wait_running(pgids)
    wall, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if profile is not None:
        profile.disable()
    measured = time.perf_counter() - wall, time.process_time() - cpu
    for log in logs:
        log.close()
    assert not any(group_members(pgid) for pgid in pgids), "deploydeck left a hook running"
    return measured


async def baseline_side(archives: list[Path]) -> tuple[float, float]:
    use_pidfd_child_watcher()
    procs = [
        await asyncio.create_subprocess_exec(
            str(archive / "hook.sh"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=str(archive),
            start_new_session=True,
        )
        for archive in archives
    ]
    await wait_running([p.pid for p in procs])
    wall, cpu = time.perf_counter(), time.process_time()
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    await asyncio.gather(*(p.wait() for p in procs))
    pgids = {p.pid for p in procs}
    while pgids & {proc.pgrp for proc in _process_table().values()}:  # the background sleeps
        await asyncio.sleep(0.005)
    return time.perf_counter() - wall, time.process_time() - cpu


# ---- end to end: a runner of N local instances, stopped -------------------------------------

TOKEN_VARIABLE = "DEPLOYDECK_BENCH_STOP"  # marks every process of one measurement
SIDES_END_TO_END = ("request", "sigterm", "baseline")
EXITS_GATHER_SECONDS = 0.002


def write_fleet(folder: Path, count: int) -> tuple[Path, Path]:
    """A workspace of `count` local instances (group bench/stop, AllAtOnce) and a revision
    whose BeforeInstall hook is SCRIPT."""
    document = {
        "applications": {
            "bench": {
                "deployment_groups": {
                    "stop": {
                        "deployment_config": "CodeDeployDefault.AllAtOnce",
                        "tag_filters": [{"key": "role", "value": "bench"}],
                    }
                }
            }
        },
        "instances": {f"i{n:04d}": {"tags": {"role": "bench"}} for n in range(count)},
    }
    workspace = folder / "deploydeck.yml"
    workspace.write_text(yaml.safe_dump(document, sort_keys=False))
    revision = folder / "revision"
    (revision / "hooks").mkdir(parents=True)
    appspec = {
        "version": 0.0,
        "os": "linux",
        "hooks": {"BeforeInstall": [{"location": "hooks/hang.sh", "timeout": 3600}]},
    }
    (revision / "appspec.yml").write_text(yaml.safe_dump(appspec, sort_keys=False))
    (revision / "hooks" / "hang.sh").write_text(SCRIPT)
    (revision / "hooks" / "hang.sh").chmod(0o755)
    return workspace, revision


def marked_pids(token: str, hooks_only: bool) -> list[int]:
    """Live processes carrying `token` in their environment (and a hook run's marker)."""
    found = []
    wanted = f"{TOKEN_VARIABLE}={token}".encode()
    for pid in _process_table():
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                environ = file.read()
        except OSError:
            continue
        if wanted in environ and (not hooks_only or HOOK_RUN_VARIABLE.encode() in environ):
            found.append(pid)
    return found


def wait_for_hooks(token: str, count: int, deadline_seconds: float = 600) -> list[int]:
    """The pids of every hook process, once `count` of them run (three per hook)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        pids = marked_pids(token, hooks_only=True)
        if len(pids) >= count:
            return pids
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(pids)} of {count} hook processes started")
        time.sleep(0.2)


class Exits:
    """pidfds of `pids`, opened before the stop; `wait()` returns once every one has exited."""

    def __init__(self, pids: list[int]) -> None:
        self.epoll = select.epoll()
        self.fds = set()
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            self.epoll.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
            self.fds.add(fd)

    def wait(self) -> None:
        """Until all have exited, waking at most every EXITS_GATHER_SECONDS (later by up to
        that much): a wake per exit would take the CPU the stop being measured needs."""
        left = set(self.fds)
        while left:
            for fd, _ in self.epoll.poll():
                left.discard(fd)
            if left:
                time.sleep(EXITS_GATHER_SECONDS)

    def close(self) -> None:
        self.epoll.close()
        for fd in self.fds:
            os.close(fd)


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in ns (0 once it is gone)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def engine_pid(engine: Engine, deployment_id: str) -> int:
    for entry in engine.journal(deployment_id):
        if isinstance(entry.event, ev.EngineAttached):
            return entry.event.pid
    raise SystemExit(f"{deployment_id} has no runner")


def deploydeck_end_to_end(folder: Path, count: int, how: str) -> tuple[float, float]:
    token = secrets.token_hex(8)
    workspace, revision = write_fleet(folder, count)
    created = subprocess.run(
        [
            *deploydeck_command(),
            "--workspace",
            str(workspace),
            "create-deployment",
            "--output",
            "json",
            "--application-name",
            "bench",
            "--deployment-group-name",
            "stop",
            "--revision",
            str(revision),
        ],
        env=dict(os.environ, **{TOKEN_VARIABLE: token}),
        capture_output=True,
        text=True,
        check=True,
    )
    deployment_id = json.loads(created.stdout.strip().splitlines()[-1])["deploymentId"]
    pids = wait_for_hooks(token, 3 * count)
    engine = Engine(load_workspace(workspace).unwrap())
    runner = engine_pid(engine, deployment_id)
    exits = Exits(pids)
    wall, cpu, runner_cpu = time.perf_counter(), time.process_time(), cpu_ns(runner)
    if how == "sigterm":
        os.kill(runner, signal.SIGTERM)
    else:
        asyncio.run(engine.stop_deployment(deployment_id))
    own_cpu = time.process_time() - cpu
    exits.wait()
    measured = time.perf_counter() - wall, own_cpu + (cpu_ns(runner) - runner_cpu) / 1e9
    exits.close()
    while not engine.get_deployment(deployment_id).terminal:
        time.sleep(0.05)
    status = engine.get_deployment(deployment_id).status
    asyncio.run(engine.aclose())
    reap_orphans()  # the runner, re-parented here
    left = marked_pids(token, hooks_only=False)
    assert not left, f"processes left after the stop: {left}"
    assert status == "Stopped", status
    return measured


def baseline_end_to_end(folder: Path, count: int) -> tuple[float, float]:
    token = secrets.token_hex(8)
    archives = write_scripts(folder, count)
    env = dict(os.environ, **{TOKEN_VARIABLE: token, HOOK_RUN_VARIABLE: "bench"})
    procs = [
        subprocess.Popen(
            [str(archive / "hook.sh")],
            cwd=archive,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for archive in archives
    ]
    exits = Exits(wait_for_hooks(token, 3 * count))
    wall, cpu = time.perf_counter(), time.process_time()
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    own_cpu = time.process_time() - cpu
    exits.wait()
    measured = time.perf_counter() - wall, own_cpu
    exits.close()
    reap_orphans()
    for proc in procs:
        proc.returncode = 0  # reaped above
    return measured


def end_to_end(args: argparse.Namespace, console: Console) -> dict[str, list[tuple[float, float]]]:
    become_subreaper()  # the detached runner and orphaned hook children are reaped here
    samples: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES_END_TO_END}
    for repeat in range(args.repeat):
        order = list(SIDES_END_TO_END) if repeat % 2 == 0 else list(reversed(SIDES_END_TO_END))
        for side in order:
            with tempfile.TemporaryDirectory(prefix="deploydeck-bench-stop-") as folder:
                if side == "baseline":
                    wall, cpu = baseline_end_to_end(Path(folder), args.hooks)
                else:
                    wall, cpu = deploydeck_end_to_end(Path(folder), args.hooks, side)
            samples[side].append((wall, cpu))
            console.print(f"  #{repeat + 1} {side:10} wall {wall:6.3f} s  cpu {cpu:6.3f} s")
    return samples


def print_profile(profile: cProfile.Profile) -> None:
    """The stop's calls by cumulative time, then by own time (the profiler slows it down)."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(12)
    print(out.getvalue(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hooks", type=int, default=200, help="hooks ended at once (200)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side (3)")
    parser.add_argument("--json", type=Path, help="write the samples and medians here")
    parser.add_argument(
        "--profile", action="store_true", help="print a profile of deploydeck's first stop"
    )
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="stop a runner of N local instances (a stop request, SIGTERM) against killpg",
    )
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    console = Console()
    if args.end_to_end:
        return report(end_to_end(args, console), args, console, "a runner's hooks, stopped")
    samples: dict[str, list[tuple[float, float]]] = {"deploydeck": [], "baseline": []}
    profile = cProfile.Profile() if args.profile else None
    for repeat in range(args.repeat):
        order = ["deploydeck", "baseline"] if repeat % 2 == 0 else ["baseline", "deploydeck"]
        for side in order:
            with tempfile.TemporaryDirectory(prefix="deploydeck-bench-stop-") as folder:
                archives = write_scripts(Path(folder), args.hooks)
                if side == "baseline":
                    wall, cpu = asyncio.run(baseline_side(archives))
                else:
                    wall, cpu = asyncio.run(deploydeck_side(archives, profile))
                    if profile is not None:
                        print_profile(profile)
                        profile = None
            samples[side].append((wall, cpu))
            console.print(f"  #{repeat + 1} {side:10} wall {wall:6.3f} s  cpu {cpu:6.3f} s")
    return report(samples, args, console, "ending running hooks at once")


def report(
    samples: dict[str, list[tuple[float, float]]],
    args: argparse.Namespace,
    console: Console,
    what: str,
) -> int:
    """Medians per side; each side's same-run wall ratio to the baseline (median, min-max) and
    the ratio of the CPU medians; the load averages when the runs began and ended."""
    medians = {
        side: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for side, s in samples.items()
    }
    base = samples["baseline"]
    load = f"load {args.load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    table = Table(title=f"{what}: {args.hooks} hooks, medians of {args.repeat} ({load})")
    for column in ("side", "wall s", "CPU s", "wall x (min-max)", "CPU x"):
        table.add_column(column, justify="right")
    for side, (wall, cpu) in medians.items():
        ratios = [s[0] / b[0] for s, b in zip(samples[side], base, strict=True)]
        wall_x = (
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if side != "baseline"
            else ""
        )
        cpu_x = f"{cpu / max(medians['baseline'][1], 1e-9):.1f}" if side != "baseline" else ""
        table.add_row(side, f"{wall:.3f}", f"{cpu:.3f}", wall_x, cpu_x)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
