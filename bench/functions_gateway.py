"""Functions benchmark: the invoke gateway's added latency against calling the warm worker
directly, how closely its routing follows an alias's weights, and how soon a scheduled shift
reaches the router, in one run.

    .venv/bin/python -m bench.functions_gateway [--requests 2000] [--repeat 3]
        [--rate 100] [--seconds 20] [--window 1] [--weights 0.1,0.5]
        [--shift-config CodeDeployDefault.LambdaLinear10PercentEvery1Minute] [--time-scale 60]
        [--json out.json]

Latency:

One Python echo function (the JSON-lines worker protocol of engine/functions/README.md).
Direct side: this process starts the worker itself and writes request lines to its stdin one at
a time, timing each line's answer. Gateway side: the gateway (`engine.functions.gateway`) runs
in its own process; this process POSTs Lambda Invoke requests (`/2015-03-31/functions/echo/
invocations?Qualifier=live`) over one keep-alive connection, one at a time, timing each answer;
behind it the gateway's own warm worker runs the same code. Each side gets 200 warm-up calls
first; sides alternate per repeat. The table shows the medians over repeats of p50 and p99 (ms)
and the added latency (gateway - direct). The run is bounded: requests x repeat x 2 calls.

Weights: the alias points at version 1 with each of `--weights` on version 2; calls go through
the gateway at a steady `--rate` per second (each sent at its slot) for `--seconds`. Per
`--window` of calls sent, the share version 2 ran (X-Amz-Executed-Version) against the set
weight: mean and largest absolute error over the windows.

Shift: a Lambda deployment of the alias from version 1 to 2 with `--shift-config` at
`--time-scale`, run by a runner process as the CLI starts it, while calls flow at `--rate`
through the gateway (its own process, on the same registry). Per step of the schedule: the
runner's delay (its TrafficShifted entry against the step's due time, AllowTraffic's start
plus the step's offset, both on the run's scaled clock, in real seconds), and the router's
(the first call the gateway routed under the new weights against the registry write, from the
function file's mtime, so to the file system's timestamp granularity, a few ms), and their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ECHO = """\
import json, sys
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.write(json.dumps({"result": request["event"]}) + "\\n")
    sys.stdout.flush()
"""
EVENT = {"path": "/orders", "items": list(range(20))}
WARMUP = 200


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def direct(code: Path, requests: int) -> list[float]:
    worker = subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=code,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    context = {"functionName": "echo", "functionVersion": "1", "awsRequestId": "bench"}
    line = json.dumps({"event": EVENT, "context": context}).encode() + b"\n"
    samples = []
    try:
        for index in range(WARMUP + requests):
            started = time.perf_counter()
            worker.stdin.write(line)
            worker.stdin.flush()
            json.loads(worker.stdout.readline())
            if index >= WARMUP:
                samples.append(time.perf_counter() - started)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    return samples


INVOKE = "/2015-03-31/functions/echo/invocations?Qualifier=live"


def through_gateway(port: int, requests: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(EVENT).encode()
    path = INVOKE
    samples = []
    try:
        for index in range(WARMUP + requests):
            started = time.perf_counter()
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            reply = connection.getresponse()
            json.loads(reply.read())
            if reply.status != 200 or reply.getheader("X-Amz-Function-Error"):
                raise RuntimeError(f"gateway answered {reply.status}")
            if index >= WARMUP:
                samples.append(time.perf_counter() - started)
    finally:
        connection.close()
    return samples


def steady(port: int, rate: float, seconds: float, stop: threading.Event | None = None):
    """Calls through the gateway at `rate` per second (each at its slot, at once when the one
    before answered late) for `seconds` or until `stop`: [(sent at, version that ran)]."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(EVENT).encode()
    began = time.time()
    calls: list[tuple[float, str]] = []
    try:
        for n in range(int(rate * seconds)):
            if stop is not None and stop.is_set():
                break
            if (pause := began + n / rate - time.time()) > 0:
                time.sleep(pause)
            sent = time.time()
            connection.request("POST", INVOKE, body, {"Content-Type": "application/json"})
            reply = connection.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"gateway answered {reply.status}")
            calls.append((sent, reply.getheader("X-Amz-Executed-Version") or "?"))
    finally:
        connection.close()
    return calls


def weight_errors(calls: list[tuple[float, str]], weight: float, window: float) -> list[float]:
    """Per window of calls sent: |share version 2 ran - weight|; a last, partial window is
    left out."""
    began = calls[0][0]
    windows: dict[int, list[str]] = {}
    for sent, version in calls:
        windows.setdefault(int((sent - began) / window), []).append(version)
    full = sorted(windows)[:-1]
    return [abs(windows[k].count("2") / len(windows[k]) - weight) for k in full]


def two_versions(registry: Any, code: Path) -> None:
    """Function echo with versions 1 and 2 (the same worker; version 2's code has one more
    file) and alias live on version 1."""
    (code / "worker.py").write_text(ECHO)
    registry.create("echo", code, [sys.executable, "worker.py"])
    registry.set_alias("echo", "live", registry.publish_version("echo"))
    (code / "v2.txt").write_text("2\n")
    registry.publish_version("echo")


def start_gateway(state: Path, shift_log: Path | None = None) -> tuple[subprocess.Popen, int]:
    """The gateway in a process of its own on the registry under `state`, and its port."""
    extra = ["--shift-log", str(shift_log)] if shift_log else []
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.functions_gateway", "--serve", str(state), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def stop_gateway(server: subprocess.Popen) -> None:
    assert server.stdin is not None
    server.stdin.close()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


async def serve(state: Path, shift_log: Path | None) -> None:
    """The gateway side's process: serve until stdin closes. With `shift_log`, the first call
    routed under each new set of alias weights is logged there (JSON lines: when, the function
    file's mtime, the weights)."""
    from engine.functions import FunctionGateway, FunctionRegistry

    class Logged(FunctionGateway):
        seen: dict[str, float] | None = None

        def resolve(self, name: str, qualifier: str) -> tuple[Any, str, str]:
            function, version, alias = super().resolve(name, qualifier)
            if alias and shift_log is not None:
                weights = function.aliases[alias].weights()
                if weights != self.seen:
                    self.seen = weights
                    line = {
                        "time": time.time(),
                        "written": self.registry.mtime(name) / 1e9,
                        "weights": weights,
                    }
                    with shift_log.open("a") as log:
                        log.write(json.dumps(line) + "\n")
            return function, version, alias

    async with Logged(FunctionRegistry(state)) as gateway:
        print(gateway.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)


def measure_weights(args: argparse.Namespace, temp: Path) -> dict[str, Any]:
    from engine.functions import FunctionRegistry

    registry = FunctionRegistry(temp / "weights")
    (temp / "weights-code").mkdir()
    two_versions(registry, temp / "weights-code")
    server, port = start_gateway(registry.root.parent)
    result: dict[str, Any] = {}
    try:
        steady(port, args.rate, 2)  # warm both workers
        for weight in args.weights:
            registry.set_alias("echo", "live", "1", {"2": weight})
            calls = steady(port, args.rate, args.seconds)
            for window in args.window:
                errors = weight_errors(calls, weight, window)
                result[f"{weight:g}/{window:g}"] = {
                    "weight": weight,
                    "window": window,
                    "calls": len(calls),
                    "windows": len(errors),
                    "overall": sum(v == "2" for _, v in calls) / len(calls),
                    "mean_error": statistics.fmean(errors),
                    "max_error": max(errors),
                }
    finally:
        stop_gateway(server)
    return result


async def measure_shift(args: argparse.Namespace, temp: Path) -> dict[str, Any]:
    """A time-scaled Lambda deployment with calls flowing; per schedule step, the delays."""
    from engine import events as ev
    from engine.api import CreateDeploymentRequest, Engine
    from engine.configs import get_config
    from engine.configs.traffic import traffic_schedule
    from engine.functions import FunctionRegistry
    from engine.workspace import load_workspace

    root = temp / "shift"
    root.mkdir()
    document = {
        "applications": {"fn": {"compute_platform": "Lambda", "deployment_groups": {"live": {}}}}
    }
    (root / "deploydeck.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    registry = FunctionRegistry(root / ".deploydeck")
    (root / "code").mkdir()
    two_versions(registry, root / "code")
    revision = root / "revision"
    revision.mkdir()
    appspec = {
        "version": 0.0,
        "Resources": [
            {
                "echoFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": "echo",
                        "Alias": "live",
                        "CurrentVersion": "1",
                        "TargetVersion": "2",
                    },
                }
            }
        ],
    }
    (revision / "appspec.yaml").write_text(yaml.safe_dump(appspec, sort_keys=False))
    config = get_config(args.shift_config)
    if config is None or config.traffic_routing is None:
        raise SystemExit(f"{args.shift_config} is not a Lambda config with a traffic routing")
    schedule = traffic_schedule(config.traffic_routing)
    log = root / "shifts.jsonl"
    server, port = start_gateway(registry.root.parent, log)
    engine = Engine(load_workspace(root / "deploydeck.yml").unwrap())
    stop = threading.Event()
    try:
        steady(port, args.rate, 1)  # warm both workers
        log.unlink(missing_ok=True)
        calls = asyncio.create_task(asyncio.to_thread(steady, port, args.rate, 3600, stop))
        created = await engine.create_deployment(
            CreateDeploymentRequest(
                "fn",
                "live",
                revision_path=revision,
                config_name=args.shift_config,
                time_scale=args.time_scale,
            )
        )
        final = await engine.wait(created.id, timeout=600)
        await asyncio.sleep(0.2)  # a call or two under the last weights
        stop.set()
        await calls
        if final.status != "Succeeded":
            raise SystemExit(f"the Lambda deployment ended {final.status}: {final.error_message}")
        journal = [e.event for e in engine.journal(created.id)]
    finally:
        stop.set()
        engine.close()
        stop_gateway(server)
    (allow,) = [
        e.time
        for e in journal
        if isinstance(e, ev.LifecycleEventStarted) and e.event == "AllowTraffic"
    ]
    shifts = [e for e in journal if isinstance(e, ev.TrafficShifted)]
    routed = [json.loads(line) for line in log.read_text().splitlines()]
    steps = []
    for step, shift in zip(schedule, shifts, strict=True):
        runner = (shift.time - allow - step.at_seconds) / args.time_scale
        wanted = round(step.target_percent / 100, 4)
        first = next((r for r in routed if round(r["weights"].get("2", 0.0), 4) == wanted), None)
        router = None if first is None else first["time"] - first["written"]
        steps.append(
            {
                "at_seconds": step.at_seconds,
                "weight": wanted,
                "runner_s": runner,
                "router_s": router,
                "total_s": None if router is None else runner + router,
            }
        )
    return {"config": args.shift_config, "time_scale": args.time_scale, "steps": steps}


def measure_latency(args: argparse.Namespace, temp: Path) -> dict[str, Any]:
    from engine.functions import FunctionRegistry

    code = temp / "echo"
    code.mkdir()
    (code / "worker.py").write_text(ECHO)
    registry = FunctionRegistry(temp / "state")
    registry.create("echo", code, [sys.executable, "worker.py"])
    registry.set_alias("echo", "live", registry.publish_version("echo"))
    server, port = start_gateway(registry.root.parent)
    rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
    try:
        for _ in range(args.repeat):
            for side in ("direct", "gateway"):
                samples = (
                    direct(code, args.requests)
                    if side == "direct"
                    else through_gateway(port, args.requests)
                )
                rounds[side].append((percentile(samples, 0.5), percentile(samples, 0.99)))
    finally:
        stop_gateway(server)
    result: dict[str, Any] = {
        side: {
            "p50_ms": statistics.median(p50 for p50, _ in values) * 1000,
            "p99_ms": statistics.median(p99 for _, p99 in values) * 1000,
        }
        for side, values in rounds.items()
    }
    # Added latency per repeat (its two sides ran back to back), then the median and range.
    for index, key in enumerate(("p50_ms", "p99_ms")):
        added = [
            1000 * (g[index] - d[index])
            for g, d in zip(rounds["gateway"], rounds["direct"], strict=True)
        ]
        result.setdefault("added", {})[key] = {
            "median": statistics.median(added),
            "min": min(added),
            "max": max(added),
        }
    result["rounds"] = rounds
    return result


def numbers(text: str) -> list[float]:
    return [float(n) for n in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="latency,weights,shift", help="what to measure")
    parser.add_argument("--requests", type=int, default=2000, help="latency: calls per side")
    parser.add_argument("--repeat", type=int, default=3, help="latency: repeats")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second (100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="weights: seconds each (20)")
    parser.add_argument(
        "--window", type=numbers, default=[0.2, 1.0], help="weights: windows, s (0.2,1)"
    )
    parser.add_argument(
        "--weights", type=numbers, default=[0.1, 0.5], help="weights: of version 2 (0.1,0.5)"
    )
    parser.add_argument(
        "--shift-config", default="CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    )
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shift-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.shift_log))
        return
    parts = args.parts.split(",")
    result: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    print(f"load average {result['load_before']:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="deploydeck-bench-") as folder:
        temp = Path(folder)
        if "latency" in parts:
            latency = result["latency"] = measure_latency(args, temp)
            print(f"{args.requests} sequential calls per side, {args.repeat} repeats (medians)")
            print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8}")
            for side in ("direct", "gateway"):
                m = latency[side]
                print(f"{side:10} {m['p50_ms']:8.3f} {m['p99_ms']:8.3f}")
            a = latency["added"]
            print(
                f"{'added':10} {a['p50_ms']['median']:8.3f} {a['p99_ms']['median']:8.3f}   "
                f"(per repeat: p50 {a['p50_ms']['min']:.3f} to {a['p50_ms']['max']:.3f}, "
                f"p99 {a['p99_ms']['min']:.3f} to {a['p99_ms']['max']:.3f}); "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if "weights" in parts:
            weights = result["weights"] = measure_weights(args, temp)
            print(
                f"\nset weight against actual, {args.rate:g} calls/s for {args.seconds:g} s per "
                "weight; error per window of calls sent"
            )
            print(
                f"{'weight':>6} {'window':>7} {'calls':>6} {'overall':>8} {'mean |err|':>11} "
                f"{'max |err|':>10}"
            )
            for w in weights.values():
                print(
                    f"{w['weight']:>6g} {w['window']:>6g}s {w['calls']:>6} {w['overall']:>8.4f} "
                    f"{w['mean_error']:>11.4f} {w['max_error']:>10.4f}"
                )
            print(f"load {os.getloadavg()[0]:.1f}", flush=True)
        if "shift" in parts:
            shift = result["shift"] = asyncio.run(measure_shift(args, temp))
            print(
                f"\n{args.shift_config} at --time-scale {args.time_scale:g}, {args.rate:g} "
                "calls/s: delay from a step's due time (ms)"
            )
            print(f"{'step at':>8} {'weight':>7} {'runner':>8} {'router':>8} {'total':>8}")
            for step in shift["steps"]:

                def ms(value: float | None) -> str:
                    return "-" if value is None else f"{1000 * value:.1f}"

                print(
                    f"{step['at_seconds']:>7}s {step['weight']:>7g} {ms(step['runner_s']):>8} "
                    f"{ms(step['router_s']):>8} {ms(step['total_s']):>8}"
                )
            totals = [s["total_s"] for s in shift["steps"] if s["total_s"] is not None]
            if totals:
                print(
                    f"total: median {1000 * statistics.median(totals):.1f} ms, max "
                    f"{1000 * max(totals):.1f} ms; load {os.getloadavg()[0]:.1f}"
                )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
