"""Console benchmark: a 1000-instance deployment's events through the console and through the
plain renderer, in the same run.

    .venv/bin/python -m bench.console [--instances 1000] [--repeat 3] [--json out.json]

A writer process journals a canned deployment (DeploymentCreated, targeting, then for every
instance its status changes, the seven lifecycle events and two output lines each, about 26
events per instance) into a fresh workspace's store, in bursts, as a runner would. A consumer
process follows the journal until the last event:
- `console`: the real DeployDeckApp under `App.run_test()` (headless, 160x45) with the
  deployment screen open, so every event goes through the bridge, the state fold and the
  table/log drawing;
- `plain`: `engine.api.Engine.events()` into `tui.render.plain.PlainRenderer` writing lines to a
  buffer (what `create-deployment --wait` prints when not on a terminal).
Each consumer reports its own CPU time (user + sys, from `resource.getrusage` of itself) spent
from the first event to the last and its peak RSS; sides alternate within the repeats and the
table shows medians, and the ratio console/plain per 1000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.model import SERVER_IN_PLACE_EVENTS

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENT_ID = "d-BENCHCONS"
BURST = 500  # events per writer transaction


def write_workspace(folder: Path, count: int) -> Path:
    import yaml

    instances = {f"i{n:04d}": {"tags": {"role": "web"}} for n in range(count)}
    document = {
        "applications": {
            "app": {
                "deployment_groups": {
                    "fleet": {
                        "deployment_config": "CodeDeployDefault.AllAtOnce",
                        "tag_filters": [{"key": "role", "value": "web"}],
                    }
                }
            }
        },
        "instances": instances,
    }
    path = folder / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def canned_events(count: int) -> list:
    """A whole AllAtOnce deployment of `count` instances, as the engine would journal it."""
    from engine import events as ev
    from engine.model import DeploymentInfo, RevisionRef

    t = 1_800_000_000.0
    names = tuple(f"i{n:04d}" for n in range(count))
    info = DeploymentInfo(
        DEPLOYMENT_ID,
        "app",
        "fleet",
        "CodeDeployDefault.AllAtOnce",
        "Created",
        RevisionRef("ab" * 32, "/bench/revision", "directory"),
        create_time=t,
    )
    out: list = [
        ev.DeploymentCreated(DEPLOYMENT_ID, t, info),
        ev.InstancesTargeted(
            DEPLOYMENT_ID,
            t,
            names,
            tuple(f"local:/bench/{n}" for n in names),
            SERVER_IN_PLACE_EVENTS,
            0,
        ),
        ev.DeploymentStatusChanged(DEPLOYMENT_ID, t, "InProgress"),
        ev.BatchStarted(DEPLOYMENT_ID, t, 1, names),
    ]
    for name in names:
        out.append(ev.InstanceStatusChanged(DEPLOYMENT_ID, t, name, "InProgress"))
    for step, event in enumerate(SERVER_IN_PLACE_EVENTS):
        for name in names:
            when = t + step + 0.5
            out.append(ev.LifecycleEventStarted(DEPLOYMENT_ID, when, name, event))
            out.append(
                ev.HookOutput(
                    DEPLOYMENT_ID, when, name, event, "hook.sh", "stdout", f"{event} on {name}\n"
                )
            )
            out.append(
                ev.HookOutput(
                    DEPLOYMENT_ID, when, name, event, "hook.sh", "stderr", "a line of stderr\n"
                )
            )
            out.append(
                ev.LifecycleEventFinished(DEPLOYMENT_ID, when + 0.2, name, event, "Succeeded")
            )
    for name in names:
        out.append(ev.InstanceStatusChanged(DEPLOYMENT_ID, t + 10, name, "Succeeded"))
    out.append(ev.DeploymentStatusChanged(DEPLOYMENT_ID, t + 10, "Succeeded", None, "done"))
    return out


def writer(workspace: Path, count: int, skip: int) -> None:
    """Journal the canned events after the first `skip` (already written), in bursts."""
    from engine.store import Store
    from engine.workspace import load_workspace

    store = Store(load_workspace(workspace).unwrap().state_dir / "state.db")
    events = canned_events(count)[skip:]
    for start in range(0, len(events), BURST):
        store.append_many(events[start : start + BURST])
        time.sleep(0.01)
    store.close()


def prepare(folder: Path, count: int) -> Path:
    """A workspace whose journal holds the deployment's first four events."""
    from engine.store import Store
    from engine.workspace import load_workspace

    path = write_workspace(folder, count)
    store = Store(load_workspace(path).unwrap().state_dir / "state.db")
    store.append_many(canned_events(count)[:4])
    store.close()
    return path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_writer(workspace: Path, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.console",
            "--writer",
            str(workspace),
            "--instances",
            str(count),
        ],
        cwd=REPO,
    )


async def consume_console(workspace: Path, count: int) -> dict:
    from engine.workspace import load_workspace
    from tui.app import DeployDeckApp
    from tui.screens.deployment import DeploymentScreen

    total = len(canned_events(count))
    app = DeployDeckApp(load_workspace(workspace).unwrap())
    app._start_seq = 0  # follow this deployment from its first event
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        app.open_deployment(DEPLOYMENT_ID)
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        cpu, wall = _cpu(), time.perf_counter()
        proc = start_writer(workspace, count)
        while True:
            view = app.state.deployments.get(DEPLOYMENT_ID)
            if view is not None and view.status == "Succeeded" and not app.dirty:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)  # the last flush and frame
        result = {"cpu": _cpu() - cpu, "wall": time.perf_counter() - wall}
        proc.wait()
    return {**result, "events": total, "peak_mib": _peak_mib()}


async def consume_plain(workspace: Path, count: int) -> dict:
    import io

    from engine.api import Engine
    from engine.workspace import load_workspace
    from tui.render.plain import PlainRenderer

    total = len(canned_events(count))
    engine = Engine(load_workspace(workspace).unwrap())
    buffer = io.StringIO()
    renderer = PlainRenderer(lambda line: buffer.write(line + "\n"), show_output=True)
    cpu, wall = _cpu(), time.perf_counter()
    proc = start_writer(workspace, count)
    seen = 0
    async for entry in engine.events(DEPLOYMENT_ID):
        renderer.render(entry.event)
        seen += 1
        if entry.event.kind == "DeploymentStatusChanged" and entry.event.status == "Succeeded":
            break
    result = {"cpu": _cpu() - cpu, "wall": time.perf_counter() - wall}
    proc.wait()
    engine.close()
    return {
        **result,
        "events": total,
        "peak_mib": _peak_mib(),
        "lines": buffer.getvalue().count("\n"),
    }


def run_side(side: str, count: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"deploydeck-bench-{side}-"))
    try:
        workspace = prepare(folder, count)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.console",
                "--consumer",
                side,
                str(workspace),
                "--instances",
                str(count),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{side} consumer failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--consumer", nargs=2, metavar=("SIDE", "WORKSPACE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.writer:
        writer(args.writer, args.instances, 4)
        return 0
    if args.consumer:
        side, workspace = args.consumer
        consume = consume_console if side == "console" else consume_plain
        print(json.dumps(asyncio.run(consume(Path(workspace), args.instances))))
        return 0
    results: dict[str, list[dict]] = {"console": [], "plain": []}
    for _ in range(args.repeat):
        for side in ("plain", "console"):
            results[side].append(run_side(side, args.instances))
    summary = {}
    for side, runs in results.items():
        events = runs[0]["events"]
        summary[side] = {
            "events": events,
            "cpu_per_1000_events": statistics.median(r["cpu"] / events * 1000 for r in runs),
            "wall": statistics.median(r["wall"] for r in runs),
            "peak_mib": statistics.median(r["peak_mib"] for r in runs),
        }
    ratio = summary["console"]["cpu_per_1000_events"] / summary["plain"]["cpu_per_1000_events"]
    table = Table(
        title=f"{args.instances} instances, {summary['plain']['events']} events, "
        f"median of {args.repeat}"
    )
    for column in ("side", "CPU s / 1000 events", "wall s", "peak MiB"):
        table.add_column(column)
    for side, row in summary.items():
        table.add_row(
            side,
            f"{row['cpu_per_1000_events']:.3f}",
            f"{row['wall']:.2f}",
            f"{row['peak_mib']:.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"console / plain CPU per event: {ratio:.2f}x (target: within 3x)")
    memory = summary["console"]["peak_mib"] / summary["plain"]["peak_mib"]
    console.print(f"console / plain peak memory: {memory:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"summary": summary, "ratio_cpu": ratio, "ratio_memory": memory, "runs": results},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
