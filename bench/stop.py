"""Stop benchmark: ending N running hooks at once, deploydeck's agent against a bare baseline,
in the same run.

    .venv/bin/python -m bench.stop [--hooks 200] [--repeat 3] [--json out.json] [--profile]

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
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.deployments.runner import use_pidfd_child_watcher
from engine.host.hooks import run_script
from engine.host.logs import ScriptsLog
from engine.host.processes import _process_table, group_members

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
    args = parser.parse_args()
    console = Console()
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
    medians = {
        side: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for side, s in samples.items()
    }
    ratios = [d[0] / b[0] for d, b in zip(samples["deploydeck"], samples["baseline"], strict=True)]
    table = Table(title=f"ending {args.hooks} running hooks at once: medians of {args.repeat}")
    for column in ("side", "wall s", "CPU s"):
        table.add_column(column, justify="right")
    for side, (wall, cpu) in medians.items():
        table.add_row(side, f"{wall:.3f}", f"{cpu:.3f}")
    console.print(table)
    console.print(
        f"wall x: {statistics.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}), "
        f"CPU x: {medians['deploydeck'][1] / max(medians['baseline'][1], 1e-9):.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
