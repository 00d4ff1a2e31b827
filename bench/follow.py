"""Follow benchmark: does `create-deployment --wait` cost more as a workspace's history grows?

    .venv/bin/python -m bench.follow                  # 200 instances, after 0, 10, 30 deployments
    .venv/bin/python -m bench.follow --quick          # 20 instances, after 0 and 5 (half a minute)
    .venv/bin/python -m bench.follow --instances 100 --history 0,15,30 --json out.json

One workspace of N local instances (bench.fleet's workspace and revision, AllAtOnce). At each
history point H (ascending), once the workspace holds H earlier deployments, one more is
measured: `deploydeck create-deployment --wait`, a whole process, with the runner it starts
(bench/measure.py). The follower is the command itself: it creates the deployment and follows
the journal to the end; its CPU time and peak RSS against H show whether following costs more
with history. The runner's CPU (with the hooks it waits for) is listed apart. Deployments
between the points, not measured, alternate the revision's two versions, as the measured ones do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.fleet import (
    CONFIGS,
    create_deployment_argv,
    instance_names,
    write_revision,
    write_workspace,
)
from bench.measure import Sample, catch_signals, measure


def journal_rows(workspace: Path) -> int:
    """Rows in the workspace's journal (its SQLite store), read-only."""
    store = workspace.parent / ".deploydeck" / "state.db"
    if not store.exists():
        return 0
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM journal").fetchone()[0])
    finally:
        db.close()


def store_mb(workspace: Path) -> float:
    store = workspace.parent / ".deploydeck" / "state.db"
    return sum(p.stat().st_size for p in store.parent.glob("state.db*")) / 1e6


def deploy(workspace: Path, revision: Path, log: Path) -> Sample:
    sample, code = measure(
        create_deployment_argv(workspace, revision), None, log, cwd=workspace.parent
    )
    if code != 0:
        raise RuntimeError(f"deployment failed (exit {code}); see {log}")
    return sample


def run(work: Path, args: argparse.Namespace) -> int:
    say = lambda line: print(line, flush=True)  # noqa: E731
    revisions = (write_revision(work / "rev", "v1"), write_revision(work / "rev", "v2"))
    workspace = write_workspace(
        work / "workspace", instance_names(args.instances), CONFIGS["AllAtOnce"]
    )
    done = 0
    rows = []
    for point in args.history:
        while done < point:
            deploy(workspace, revisions[done % 2], work / "history.log")
            done += 1
            if done % 5 == 0:
                say(f"  {done} deployments done")
        events = journal_rows(workspace)
        megabytes = store_mb(workspace)
        sample = deploy(workspace, revisions[done % 2], work / f"measured-{point}.log")
        done += 1
        runner_cpu = sample.cpu - sample.command_cpu
        say(
            f"after {point:3} deployments ({events} journal rows, {megabytes:.1f} MB): follower "
            f"cpu {sample.command_cpu:.2f} s rss {sample.command_rss_kb / 1024:.1f} MB; runner "
            f"cpu {runner_cpu:.2f} s; wall {sample.wall:.2f} s; load "
            f"{sample.load_before:.1f}-{sample.load_after:.1f}"
        )
        rows.append((point, events, megabytes, sample))
    table = Table(
        title=f"create-deployment --wait on {args.instances} instances after H deployments",
        caption="follower: the deploydeck command (create, then follow the journal); "
        "runner: the runner process and its hooks; load: 1-minute load average",
    )
    columns = ("H", "journal rows", "store MB", "follower CPU s", "follower RSS MB")
    columns += ("runner CPU s", "wall s", "load")
    for column in columns:
        table.add_column(column, justify="right")
    for point, events, megabytes, s in rows:
        table.add_row(
            str(point),
            str(events),
            f"{megabytes:.1f}",
            f"{s.command_cpu:.2f}",
            f"{s.command_rss_kb / 1024:.1f}",
            f"{s.cpu - s.command_cpu:.2f}",
            f"{s.wall:.2f}",
            f"{s.load_before:.1f}-{s.load_after:.1f}",
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    if len(rows) > 1:
        first, last = rows[0][3], rows[-1][3]
        console.print(
            f"follower at H={rows[-1][0]} against H={rows[0][0]}: CPU "
            f"{last.command_cpu / first.command_cpu:.2f}x, peak RSS "
            f"{last.command_rss_kb / first.command_rss_kb:.2f}x"
        )
    if args.json:
        document = {
            "instances": args.instances,
            "points": [
                {"history": p, "journal_rows": e, "store_mb": m, **asdict(s), "cpu": s.cpu}
                for p, e, m, s in rows
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.follow",
        description="create-deployment --wait's cost as the workspace's history grows.",
    )
    parser.add_argument("--instances", type=int, default=200, help="instances in the workspace")
    parser.add_argument(
        "--history", default="0,10,30", help="earlier deployments before each measured one"
    )
    parser.add_argument("--quick", action="store_true", help="--instances 20 --history 0,5")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.history = 20, "0,5"
    args.history = sorted({int(h) for h in args.history.split(",") if h})
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="deploydeck-follow-", dir="/tmp"))
    try:
        return run(work, args)
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop}); nothing was reported", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
