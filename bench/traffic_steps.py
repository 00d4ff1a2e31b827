"""Traffic-step benchmark: how long BlockTraffic and AllowTraffic take per batch of an in-place
deployment, against the least they could take, measured in the same run.

    .venv/bin/python -m bench.traffic_steps [--balancers builtin,haproxy]
        [--configs HalfAtATime,OneAtATime] [--instances 4] [--repeat 3]
        [--interval 0.5] [--threshold 3] [--request-seconds 0.3] [--json out.json]

For each balancer and deployment config: a workspace of `--instances` local instances behind
the group's balancer (the built-in proxy, or an HAProxy deploydeck owns), each running
bench/traffic_instance.py, started by the revision's hooks (the web revision of
tests/traffic/test_inplace_traffic.py). v1 is deployed once (warm-up), then `--repeat`
deployments alternate v2 and v1, each a real runner process (`create_deployment`, as the CLI),
while a load generator in this process sends requests through the balancer the whole time
(`/stream?seconds=--request-seconds`, 4 keep-alive connections): none may fail.

From the deployment's journal (LifecycleEventStarted/Finished) come each instance's
BlockTraffic and AllowTraffic times; a batch's instances run theirs side by side, so per batch
the longest of each counts (the instances' starts differ by their hooks' times, not by the
balancer). The floors, measured in the same run:

- AllowTraffic: the health-check floor, healthy threshold x interval (the time a target group
  needs to see `threshold` passing checks `interval` apart);
- BlockTraffic: the drain floor, from the block's start to the end of the last request the
  instance was serving (the instances log each answered request, bench/traffic_instance.py),
  0 when it was serving none.

The table shows, per balancer and config, medians over all batches of all repeats (min-max):
Allow time / health floor, Block time - drain floor (the most any instance of the batch
outlasted its own drain), and (Block + Allow) / (drain floor + health floor), with the target:
within 10 % of the floor. The machine's load average is printed with every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from engine import events as ev
from engine.api import Engine
from engine.workspace import load_workspace
from tests.traffic.conftest import free_port
from tests.traffic.loadgen import run_load
from tests.traffic.test_inplace_traffic import WebFleet, until_exists, until_listening

INSTANCE = Path(__file__).with_name("traffic_instance.py")
CONFIGS = ("HalfAtATime", "OneAtATime")
BALANCERS = ("builtin", "haproxy")
TARGET = 1.10  # within 10 % of the floor


@dataclass(frozen=True)
class Batch:
    """One batch of one measured deployment: its traffic steps' times and their floors (s)."""

    balancer: str
    config: str
    repeat: int
    batch: int
    instances: int
    block: float  # the batch's longest BlockTraffic
    drain_floor: float  # the longest drain (block start to its last request's end)
    allow: float  # the batch's longest AllowTraffic
    health_floor: float
    block_each: tuple[float, ...]  # per instance
    drain_each: tuple[float, ...]
    allow_each: tuple[float, ...]
    load: float  # 1-minute load average at the deployment's end

    @property
    def allow_ratio(self) -> float:
        return self.allow / self.health_floor

    @property
    def block_excess(self) -> float:
        """The most any instance's BlockTraffic outlasted its own drain."""
        return max(b - d for b, d in zip(self.block_each, self.drain_each, strict=True))

    @property
    def ratio(self) -> float:
        return (self.block + self.allow) / (self.drain_floor + self.health_floor)


def step_times(
    entries: list[ev.JournalEntry], event: str
) -> tuple[dict[str, tuple[float, float]], list[tuple[str, ...]]]:
    """Each instance's (start, finish) of `event`, and the batches in order."""
    started: dict[str, float] = {}
    times: dict[str, tuple[float, float]] = {}
    batches: list[tuple[str, ...]] = []
    for entry in entries:
        e = entry.event
        if isinstance(e, ev.BatchStarted):
            batches.append(e.instances)
        elif isinstance(e, ev.LifecycleEventStarted) and e.event == event:
            started[e.instance] = e.time
        elif isinstance(e, ev.LifecycleEventFinished) and e.event == event:
            if e.status != "Succeeded":
                raise SystemExit(f"{event} on {e.instance} ended {e.status}: {e.diagnostics}")
            times[e.instance] = (started[e.instance], e.time)
    return times, batches


def drain_end(log: Path, version: str, start: float, finish: float) -> float:
    """When the last request `version`'s server on this instance was serving at `start` (or
    got before `finish`) was answered; `start` when there was none."""
    last = start
    for line in log.read_text().splitlines():
        served, received, answered = line.split()
        if served == version and float(received) < finish and float(answered) > start:
            last = max(last, float(answered))
    return last


def longest(times: list[tuple[float, float]]) -> float:
    return max(end - begin for begin, end in times)


class Bench:
    def __init__(self, args: argparse.Namespace, balancer: str, config: str, folder: Path):
        self.args = args
        self.balancer = balancer
        self.config = config
        self.lb_port = free_port()
        settings = {
            "kind": balancer,
            "port": self.lb_port,
            "health_check": {
                "path": "/healthz",
                "interval_seconds": args.interval,
                "timeout_seconds": 1,
                "healthy_threshold": args.threshold,
                "unhealthy_threshold": 2,
            },
            "deregistration_delay_seconds": args.deregistration_delay,
            "allow_timeout_seconds": 60,
        }
        self.fleet = WebFleet(
            folder, settings, count=args.instances, env={"BACKEND": str(INSTANCE)}
        )
        # WebFleet deploys HalfAtATime with an inline engine; the benchmark runs `config` in a
        # runner process of its own, as the CLI does.
        path = folder / "deploydeck.yml"
        document = yaml.safe_load(path.read_text())
        group = document["applications"]["app"]["deployment_groups"]["fleet"]
        group["deployment_config"] = f"CodeDeployDefault.{config}"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.fleet.engine.close()
        self.fleet.engine = Engine(load_workspace(path).unwrap())

    async def deploy(self, version: str) -> str:
        deployment = await self.fleet.deploy(version)
        final = await self.fleet.engine.wait(deployment, timeout=600)
        if final.status != "Succeeded":
            raise SystemExit(f"{self.balancer}/{self.config}: {final.error_message}")
        return deployment

    async def measured(self, version: str) -> tuple[str, int]:
        """Deploy `version` with requests flowing through the balancer from before the first
        BlockTraffic until every instance is back in service; the deployment and the number of
        requests served."""
        fleet = self.fleet
        for path in [fleet.load_started, fleet.hold] + [
            fleet.state(n) / f"allowed-{version}" for n in fleet.names
        ]:
            path.unlink(missing_ok=True)
        deployment = await fleet.deploy(version)
        await until_listening(self.lb_port)  # the runner started the balancer
        done = asyncio.Event()
        load = asyncio.create_task(
            run_load(
                "127.0.0.1",
                self.lb_port,
                total=10**9,
                concurrency=4,
                pause=0.02,
                path=f"/stream?seconds={self.args.request_seconds}",
                until=done,
            )
        )
        await asyncio.sleep(0.5)
        fleet.load_started.touch()  # the first BeforeBlockTraffic waits for this
        await until_exists(*(fleet.state(n) / f"allowed-{version}" for n in fleet.names))
        await asyncio.sleep(0.3)
        done.set()
        report = await load
        fleet.hold.touch()  # the last instance's AfterAllowTraffic holds the balancer up
        final = await fleet.engine.wait(deployment, timeout=600)
        if final.status != "Succeeded":
            raise SystemExit(f"{self.balancer}/{self.config}: {final.error_message}")
        if report.failures:
            raise SystemExit(
                f"{self.balancer}/{self.config}: {len(report.failures)} of "
                f"{report.ok + len(report.failures)} requests failed: {report.failures[:3]}"
            )
        return deployment, report.ok

    def batches(self, deployment: str, old: str, repeat: int) -> list[Batch]:
        entries = self.fleet.engine.journal(deployment)
        blocks, batches = step_times(entries, "BlockTraffic")
        allows, _ = step_times(entries, "AllowTraffic")
        floor = self.args.threshold * self.args.interval
        rows = []
        for number, names in enumerate(batches, 1):
            drained = [
                (blocks[n][0], drain_end(self.fleet.state(n) / "requests.log", old, *blocks[n]))
                for n in names
            ]
            rows.append(
                Batch(
                    self.balancer,
                    self.config,
                    repeat,
                    number,
                    len(names),
                    longest([blocks[n] for n in names]),
                    longest(drained),
                    longest([allows[n] for n in names]),
                    floor,
                    tuple(blocks[n][1] - blocks[n][0] for n in names),
                    tuple(end - begin for begin, end in drained),
                    tuple(allows[n][1] - allows[n][0] for n in names),
                    os.getloadavg()[0],
                )
            )
        return rows

    async def run(self) -> list[Batch]:
        fleet = self.fleet
        fleet.hold.touch()
        await self.deploy("v1")  # warm-up: instances running v1, nothing blocked before
        rows = []
        for repeat in range(self.args.repeat):
            version, old = ("v2", "v1") if repeat % 2 == 0 else ("v1", "v2")
            deployment, served = await self.measured(version)
            found = self.batches(deployment, old, repeat)
            rows += found
            print(
                f"  {self.balancer:8} {self.config:12} run {repeat + 1}: {served} requests, "
                "0 failed; per batch block/drain floor/allow s: "
                + ", ".join(f"{b.block:.2f}/{b.drain_floor:.2f}/{b.allow:.2f}" for b in found)
                + f"; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        return rows


def summary(rows: list[Batch]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "batches": len(rows),
        "allow_s": stats([r.allow for r in rows]),
        "allow_ratio": stats([r.allow_ratio for r in rows]),
        "block_s": stats([r.block for r in rows]),
        "drain_floor_s": stats([r.drain_floor for r in rows]),
        "block_excess_s": stats([r.block_excess for r in rows]),
        "ratio": stats([r.ratio for r in rows]),
        "load": stats([r.load for r in rows]),
    }


def fmt(s: dict[str, float], spec: str = ".2f") -> str:
    return f"{s['median']:{spec}} ({s['min']:{spec}}-{s['max']:{spec}})"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    for balancer in args.balancers.split(","):
        for config in args.configs.split(","):
            # Short: an owned HAProxy's admin socket lives below it (108 bytes at most).
            folder = Path(tempfile.mkdtemp(prefix="ddts-", dir="/tmp"))
            bench = Bench(args, balancer, config, folder)
            try:
                rows = await bench.run()
            finally:
                bench.fleet.hold.touch()  # a run given up midway ends its deployment
                await bench.fleet.close()
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
            results[f"{balancer}/{config}"] = summary(rows)
            samples += [{**asdict(r), "ratio": r.ratio} for r in rows]
    return {"summary": results, "batches": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--balancers", default=",".join(BALANCERS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="measured deployments (3)")
    parser.add_argument("--interval", type=float, default=0.5, help="health check interval s")
    parser.add_argument("--threshold", type=int, default=3, help="healthy threshold")
    parser.add_argument("--deregistration-delay", type=float, default=10.0)
    parser.add_argument("--request-seconds", type=float, default=0.3, help="each request's time")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the /tmp/ddts-* folders")
    args = parser.parse_args()
    began = os.getloadavg()[0]
    started = time.perf_counter()
    print(
        f"{args.instances} instances, health checks every {args.interval:g} s, healthy after "
        f"{args.threshold}: floor {args.threshold * args.interval:g} s; requests of "
        f"{args.request_seconds:g} s; load average {began:.1f}",
        flush=True,
    )
    result = asyncio.run(main_async(args))
    print(
        f"\nmedians over batches (min-max); load average at start {began:.1f}, now "
        f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - started:.0f} s"
    )
    print(
        f"{'balancer/config':22} {'n':>3} {'allow s':>17} {'allow/floor':>17} "
        f"{'block-drain s':>20} {'(B+A)/floors':>17}  target"
    )
    for name, s in result["summary"].items():
        met = s["ratio"]["median"] <= TARGET and s["allow_ratio"]["median"] <= TARGET
        print(
            f"{name:22} {s['batches']:>3} {fmt(s['allow_s']):>17} {fmt(s['allow_ratio']):>17} "
            f"{fmt(s['block_excess_s'], '.3f'):>20} {fmt(s['ratio']):>17}  "
            + ("met" if met else "NOT met")
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
