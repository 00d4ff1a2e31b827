"""Traffic benchmark: the built-in load balancer against HAProxy on the same loopback workload,
in the same run.

    .venv/bin/python -m bench.traffic_proxy [--requests 4000] [--concurrency 8] [--repeat 3]
                                            [--json out.json]

Two application instances (a minimal asyncio HTTP/1.1 server each, own process, keep-alive)
sit behind each balancer: deploydeck's built-in proxy (`engine.traffic.builtin`, run in its own
process) and HAProxy (the config deploydeck writes for an HAProxy it owns). The client is the
tests' bounded load generator (tests/traffic/loadgen.py) in this process: `--requests` GETs
over `--concurrency` keep-alive connections, after a warm-up of 200. Sides alternate; the
table shows medians of requests/s and p99 latency, and the ratios built-in/HAProxy. On a small
machine the Python client and instances also take CPU, so the ratio understates HAProxy's own
lead: it is what a client on this machine sees.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.haproxy import HAProxyBalancer
from engine.traffic.model import HealthCheck, Target, TrafficSettings
from tests.traffic.loadgen import run_load

SETTINGS = TrafficSettings(health_check=HealthCheck(path="/", interval_seconds=2.0))
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Version: b\r\n\r\nok\n"


class _Instance(asyncio.Protocol):
    """Answers every request head (GETs, no bodies) with a fixed response, keep-alive."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


async def serve_instance() -> None:
    server = await asyncio.get_running_loop().create_server(_Instance, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def serve_builtin(ports: list[int]) -> None:
    targets = [Target(f"i{n}", "127.0.0.1", p) for n, p in enumerate(ports)]
    balancer = BuiltinBalancer(targets, SETTINGS)
    await balancer.start()
    print(balancer.address[1], flush=True)
    await asyncio.Event().wait()


async def child(*args: str) -> tuple[asyncio.subprocess.Process, int]:
    """A child of this module in its own process group, and the port it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.traffic_proxy",
        *args,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    return proc, int(await proc.stdout.readline())


async def stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(port: int, requests: int, concurrency: int) -> dict[str, float]:
    await run_load("127.0.0.1", port, 200, concurrency)  # warm-up
    began = time.perf_counter()
    report = await run_load("127.0.0.1", port, requests, concurrency)
    wall = time.perf_counter() - began
    if report.failures:
        raise SystemExit(f"requests failed: {report.failures[:3]}")
    latencies = sorted(report.latencies)
    return {
        "rps": requests / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
    }


async def run(requests: int, concurrency: int, repeat: int) -> dict:
    instances = [await child("--instance") for _ in range(2)]
    ports = [port for _, port in instances]
    builtin, builtin_port = await child("--builtin", ",".join(map(str, ports)))
    folder = Path(tempfile.mkdtemp(prefix="ddbench-"))
    haproxy_port = free_port()
    haproxy = HAProxyBalancer.owned(
        folder,
        [Target(f"i{n}", "127.0.0.1", p) for n, p in enumerate(ports)],
        ("127.0.0.1", haproxy_port),
        SETTINGS,
    )
    samples: dict[str, list[dict[str, float]]] = {"builtin": [], "haproxy": []}
    try:
        await haproxy.start()
        sides = {"builtin": builtin_port, "haproxy": haproxy_port}
        for n in range(repeat):
            order = ["builtin", "haproxy"] if n % 2 == 0 else ["haproxy", "builtin"]
            for side in order:
                samples[side].append(await measure(sides[side], requests, concurrency))
    finally:
        await haproxy.close()
        for proc in [builtin] + [p for p, _ in instances]:
            await stop(proc)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    medians = {
        side: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        for side, runs in samples.items()
    }
    ratios = {
        "rps": medians["builtin"]["rps"] / medians["haproxy"]["rps"],
        "p99": medians["builtin"]["p99_ms"] / medians["haproxy"]["p99_ms"],
    }
    return {"samples": samples, "medians": medians, "ratios": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="measured requests (4000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client connections (8)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side (3)")
    parser.add_argument("--json", type=Path, help="write the samples, medians and ratios here")
    parser.add_argument("--instance", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--builtin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instance:
        asyncio.run(serve_instance())
        return 0
    if args.builtin:
        asyncio.run(serve_builtin([int(p) for p in args.builtin.split(",")]))
        return 0
    result = asyncio.run(run(args.requests, args.concurrency, args.repeat))
    print(
        f"{args.requests} requests x {args.repeat} runs per side, {args.concurrency} keep-alive "
        "connections, 2 instances; medians"
    )
    print(f"{'side':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for side, m in result["medians"].items():
        print(f"{side:<9} {m['rps']:>8.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f}")
    r = result["ratios"]
    print(f"built-in/HAProxy: requests/s x{r['rps']:.2f}, p99 x{r['p99']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
