"""Start-up benchmark: how long deploydeck's quick commands take against a bare interpreter.

    .venv/bin/python -m bench.startup                 # 10 runs per command (about a minute)
    .venv/bin/python -m bench.startup --quick         # 3 runs
    .venv/bin/python -m bench.startup --repeat 20 --json out.json

Each command is a whole process, started as a user starts it (the `deploydeck` script of this
environment), against `python -c pass` of the same interpreter:
- `deploydeck --help`;
- `deploydeck validate sample_revisions/web-v1`;
- `deploydeck local` of a tiny revision (one file, one hook) into a scratch root;
- the console: `deploydeck -w WORKSPACE` (a 20-instance workspace) with the app run headless
  (`App.run_test()`, 160x45) until its first screen is composed: the time to first frame.
Runs go round-robin (bare, help, validate, local, console, bare, ...) so drift hits all alike.
The table gives medians and lowest wall times, CPU, and the difference and ratio to the bare
interpreter; targets: each command within 0.15 s of the bare interpreter, the first frame within
1 s of launch. Then each command runs once with `-X importtime` and its top import costs are
listed by top-level package (own import time summed over the package's modules).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench.measure import REPO, catch_signals, compile_checkout, deploydeck_command

COMMAND_TARGET = 0.15  # seconds over the bare interpreter
FRAME_TARGET = 1.0  # seconds from launch to the console's first frame
FIRST_FRAME = "deploydeck-bench: first frame"

# The console as `deploydeck -w WORKSPACE` runs it, with App.run swapped for a headless run
# that says when the first screen is composed and then quits.
CONSOLE_CHILD = f"""\
import asyncio, os, sys
import tui.cli
import tui.app

def headless(app, *args, **kwargs):
    async def first_frame():
        async with app.run_test(size=(160, 45)):
            os.write(1, {(FIRST_FRAME + chr(10)).encode()!r})  # the app captures print
    asyncio.run(first_frame())

tui.app.DeployDeckApp.run = headless
sys.exit(tui.cli.main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Command:
    name: str
    argv: list[str]  # without the interpreter for `python_args` commands
    first_frame: bool = False  # time until FIRST_FRAME is printed, not until exit


@dataclass(frozen=True)
class Run:
    wall: float  # seconds from spawn to exit (or to the first frame)
    cpu: float  # user + sys of the process and what it waited for


def tiny_revision(folder: Path, install_to: Path) -> Path:
    """One file installed to `install_to`, one hook."""
    root = folder / "tiny"
    (root / "hooks").mkdir(parents=True)
    (root / "index.html").write_text("<h1>tiny</h1>\n")
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "index.html", "destination": str(install_to)}],
        "hooks": {"ValidateService": [{"location": "hooks/check.sh"}]},
    }
    (root / "appspec.yml").write_text(yaml.safe_dump(appspec, sort_keys=False))
    hook = root / "hooks" / "check.sh"
    hook.write_text('#!/bin/sh\n[ -f "$0" ]\n')
    hook.chmod(0o755)
    return root


def small_workspace(folder: Path, size: int = 20) -> Path:
    folder.mkdir(parents=True)
    document = {
        "applications": {
            "bench": {
                "deployment_groups": {
                    "fleet": {
                        "deployment_config": "CodeDeployDefault.AllAtOnce",
                        "tag_filters": [{"key": "role", "value": "bench"}],
                    }
                }
            }
        },
        "instances": {f"i{n:04d}": {"tags": {"role": "bench"}} for n in range(1, size + 1)},
    }
    path = folder / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def commands(work: Path) -> list[Command]:
    deploydeck = deploydeck_command()
    install_to = work / "installed"
    install_to.mkdir()
    revision = tiny_revision(work, install_to)
    config = work / "agent.yml"
    config.write_text(f":root_dir: {work / 'agent-root'}\n:log_dir: {work / 'agent-logs'}\n")
    workspace = small_workspace(work / "workspace")
    local = ["local", "-l", str(revision), "-c", str(config), "-b", "OVERWRITE", "-q"]
    return [
        Command("python -c pass", [sys.executable, "-c", "pass"]),
        Command("deploydeck --help", [*deploydeck, "--help"]),
        Command("validate web-v1", [*deploydeck, "validate", "sample_revisions/web-v1"]),
        Command("local tiny", [*deploydeck, *local]),
        Command(
            "console first frame",
            [sys.executable, "-c", CONSOLE_CHILD, "-w", str(workspace)],
            first_frame=True,
        ),
    ]


def run_once(command: Command, log: Path) -> Run:
    with log.open("ab") as out:
        start = time.perf_counter()
        child = subprocess.Popen(
            command.argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if command.first_frame else out,
            stderr=out,
            start_new_session=True,
        )
        wall = None
        if command.first_frame:
            assert child.stdout is not None
            for line in child.stdout:
                if line.decode(errors="replace").strip() == FIRST_FRAME:
                    wall = time.perf_counter() - start
                    break
            child.stdout.read()
            child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if wall is None:
            wall = time.perf_counter() - start
    if code != 0 or (command.first_frame and wall is None):
        raise RuntimeError(f"{command.name} failed (exit {code}); see {log}")
    return Run(wall, usage.ru_utime + usage.ru_stime)


def import_costs(command: Command, log: Path) -> Counter[str]:
    """Own import time (microseconds) per top-level package, from one run with -X importtime."""
    argv = command.argv
    if argv[0] != sys.executable:  # the deploydeck script: run it with the same interpreter
        argv = [sys.executable, *argv]
    argv = [argv[0], "-X", "importtime", *argv[1:]]
    found = subprocess.run(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    log.write_bytes(found.stderr)
    costs: Counter[str] = Counter()
    for line in found.stderr.decode(errors="replace").splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            costs[match.group(2).split(".")[0]] += int(match.group(1))
    return costs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description="deploydeck's start-up against a bare interpreter.",
    )
    parser.add_argument("--repeat", type=int, default=10, help="runs per command")
    parser.add_argument("--quick", action="store_true", help="--repeat 3")
    parser.add_argument("--top", type=int, default=6, help="packages listed per command")
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 3
    compile_checkout()
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="deploydeck-startup-", dir="/tmp"))
    try:
        return run(work, args)
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop}); nothing was reported", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    every = commands(work)
    runs: dict[str, list[Run]] = {c.name: [] for c in every}
    load = [os.getloadavg()[0]]
    for command in every:  # a first run of each, not counted: bytecode and page cache
        run_once(command, work / "warmup.log")
    for _ in range(args.repeat):
        for command in every:
            runs[command.name].append(run_once(command, work / "runs.log"))
        load.append(os.getloadavg()[0])
    bare = statistics.median(r.wall for r in runs[every[0].name])
    table = Table(
        title=f"start-up: medians of {args.repeat} runs, seconds",
        caption=(
            f"1-minute load average {min(load):.1f}-{max(load):.1f}; targets: commands within "
            f"{COMMAND_TARGET} s of python -c pass, first frame within {FRAME_TARGET} s of launch"
        ),
    )
    for column in ("command", "wall", "lowest", "CPU", "- bare", "x bare", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    summary = {}
    for command in every:
        walls = [r.wall for r in runs[command.name]]
        wall = statistics.median(walls)
        cpu = statistics.median(r.cpu for r in runs[command.name])
        if command is every[0]:
            verdict = ""
        elif command.first_frame:
            verdict = "met" if wall <= FRAME_TARGET else "NOT met"
        else:
            verdict = "met" if wall - bare <= COMMAND_TARGET else "NOT met"
        table.add_row(
            command.name,
            f"{wall:.3f}",
            f"{min(walls):.3f}",
            f"{cpu:.3f}",
            f"+{wall - bare:.3f}",
            f"{wall / bare:.1f}",
            verdict,
        )
        summary[command.name] = {
            "wall": wall,
            "lowest": min(walls),
            "cpu": cpu,
            "over_bare": wall - bare,
            "ratio": wall / bare,
            "met": verdict == "met" if verdict else None,
            "walls": walls,
        }
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print("\nimport time (-X importtime, one run): own time summed per top-level package")
    for command in every[1:]:
        costs = import_costs(command, work / "importtime.log")
        total = sum(costs.values())
        top = ", ".join(f"{name} {us / 1000:.0f}" for name, us in costs.most_common(args.top))
        console.print(f"  {command.name}: {total / 1000:.0f} ms in all; {top}", soft_wrap=True)
        summary[command.name]["imports_ms"] = {n: us / 1000 for n, us in costs.most_common(20)}
    if args.json:
        document = {"load_average": load, "repeat": args.repeat, "commands": summary}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
