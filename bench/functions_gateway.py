"""Functions benchmark: the invoke gateway's added latency against calling the warm worker
directly, in the same run.

    .venv/bin/python -m bench.functions_gateway [--requests 2000] [--repeat 3] [--json out.json]

One Python echo function (the JSON-lines worker protocol of engine/functions/README.md).
Direct side: this process starts the worker itself and writes request lines to its stdin one at
a time, timing each line's answer. Gateway side: the gateway (`engine.functions.gateway`) runs
in its own process; this process POSTs Lambda Invoke requests (`/2015-03-31/functions/echo/
invocations?Qualifier=live`) over one keep-alive connection, one at a time, timing each answer;
behind it the gateway's own warm worker runs the same code. Each side gets 200 warm-up calls
first; sides alternate per repeat. The table shows the medians over repeats of p50 and p99 (ms)
and the added latency (gateway - direct). The run is bounded: requests x repeat x 2 calls.
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
import time
from pathlib import Path

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


def through_gateway(port: int, requests: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(EVENT).encode()
    path = "/2015-03-31/functions/echo/invocations?Qualifier=live"
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


async def serve(state: Path) -> None:
    """The gateway side's process: serve until stdin closes."""
    from engine.functions import FunctionGateway, FunctionRegistry

    async with FunctionGateway(FunctionRegistry(state)) as gateway:
        print(gateway.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return

    from engine.functions import FunctionRegistry

    with tempfile.TemporaryDirectory(prefix="deploydeck-bench-") as temp:
        code = Path(temp) / "echo"
        code.mkdir()
        (code / "worker.py").write_text(ECHO)
        registry = FunctionRegistry(Path(temp) / "state")
        registry.create("echo", code, [sys.executable, "worker.py"])
        registry.set_alias("echo", "live", registry.publish_version("echo"))
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.functions_gateway", "--serve", str(registry.root.parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert server.stdout is not None and server.stdin is not None
        try:
            port = int(server.stdout.readline())
            rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
            for _ in range(args.repeat):
                for side in ("direct", "gateway"):
                    samples = (
                        direct(code, args.requests)
                        if side == "direct"
                        else through_gateway(port, args.requests)
                    )
                    rounds[side].append((percentile(samples, 0.5), percentile(samples, 0.99)))
        finally:
            server.stdin.close()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    result = {
        side: {
            "p50_ms": statistics.median(p50 for p50, _ in values) * 1000,
            "p99_ms": statistics.median(p99 for _, p99 in values) * 1000,
        }
        for side, values in rounds.items()
    }
    added = {key: result["gateway"][key] - result["direct"][key] for key in ("p50_ms", "p99_ms")}
    print(f"{args.requests} sequential calls per side, {args.repeat} repeats (medians)")
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8}")
    for side in ("direct", "gateway"):
        print(f"{side:10} {result[side]['p50_ms']:8.3f} {result[side]['p99_ms']:8.3f}")
    print(f"{'added':10} {added['p50_ms']:8.3f} {added['p99_ms']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps({**result, "added": added, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
