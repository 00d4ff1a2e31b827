"""Traffic benchmark: the built-in load balancer against HAProxy on the same loopback workload,
in the same run.

    .venv/bin/python -m bench.traffic_proxy [--requests 20000] [--concurrency 8] [--repeat 5]
                                            [--compare DIR] [--json out.json]

Two application instances (a minimal asyncio HTTP/1.1 server each, own process, keep-alive)
sit behind each balancer: deploydeck's built-in proxy (`engine.traffic.builtin`, run in its own
process) and HAProxy (the config deploydeck writes for an HAProxy it owns). The client is the
tests' bounded load generator (tests/traffic/loadgen.py) in this process: `--requests` GETs
over `--concurrency` keep-alive connections, after a warm-up of 200. Sides alternate; the
table shows medians of requests/s, p50 and p99 latency, and the balancer process's own CPU
time per request (from /proc: what the proxy costs, whatever else the machine runs), with the
ratios built-in/HAProxy. On a small machine the Python client and instances also take CPU, so
the requests/s ratio understates HAProxy's own lead: it is what a client on this machine sees.
With `--compare DIR` a third side runs the built-in balancer from another checkout (say,
`git archive main | tar -x -C DIR`), so a change is measured against its base in the same run.
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_builtin(ports: list[int]) -> None:
    targets = [Target(f"i{n}", "127.0.0.1", p) for n, p in enumerate(ports)]
    balancer = BuiltinBalancer(targets, SETTINGS)
    await balancer.start()
    print(balancer.address[1], flush=True)
    await asyncio.Event().wait()


async def child(*args: str, code: Path | None = None) -> tuple[asyncio.subprocess.Process, int]:
    """A child of this module in its own process group, and the port it printed; with `code`,
    this module and the engine of that checkout."""
    env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.traffic_proxy",
        *args,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=code,
        env=env,
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


async def measure(port: int, pid: int, requests: int, concurrency: int) -> dict[str, float]:
    await run_load("127.0.0.1", port, 200, concurrency)  # warm-up
    cpu = cpu_seconds(pid)
    began = time.perf_counter()
    report = await run_load("127.0.0.1", port, requests, concurrency)
    wall = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu
    if report.failures:
        raise SystemExit(f"requests failed: {report.failures[:3]}")
    latencies = sorted(report.latencies)
    return {
        "rps": requests / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "cpu_us": 1e6 * cpu / requests,
        "load": os.getloadavg()[0],
    }


async def run(requests: int, concurrency: int, repeat: int, compare: Path | None) -> dict:
    instances = [await child("--instance") for _ in range(2)]
    ports = [port for _, port in instances]
    builtin, builtin_port = await child("--builtin", ",".join(map(str, ports)))
    proxies = [builtin]
    sides = {"builtin": (builtin_port, builtin.pid)}
    if compare is not None:
        base, base_port = await child("--builtin", ",".join(map(str, ports)), code=compare)
        proxies.append(base)
        sides["base"] = (base_port, base.pid)
    folder = Path(tempfile.mkdtemp(prefix="ddbench-"))
    haproxy_port = free_port()
    haproxy = HAProxyBalancer.owned(
        folder,
        [Target(f"i{n}", "127.0.0.1", p) for n, p in enumerate(ports)],
        ("127.0.0.1", haproxy_port),
        SETTINGS,
    )
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in [*sides, "haproxy"]}
    try:
        await haproxy.start()
        assert haproxy.owned_process is not None
        sides["haproxy"] = (haproxy_port, haproxy.owned_process.proc.pid)
        for n in range(repeat):
            order = list(sides) if n % 2 == 0 else list(reversed(sides))
            for side in order:
                samples[side].append(await measure(*sides[side], requests, concurrency))
    finally:
        await haproxy.close()
        for proc in proxies + [p for p, _ in instances]:
            await stop(proc)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    medians = {
        side: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        for side, runs in samples.items()
    }
    ratios = {
        side: {
            "rps": medians[side]["rps"] / medians["haproxy"]["rps"],
            "p99": medians[side]["p99_ms"] / medians["haproxy"]["p99_ms"],
            "cpu": medians[side]["cpu_us"] / medians["haproxy"]["cpu_us"],
        }
        for side in samples
        if side != "haproxy"
    }
    return {"samples": samples, "medians": medians, "ratios": ratios}


def spread(runs: list[dict[str, float]], key: str, spec: str) -> str:
    """The median of `key` over `runs`, with its range."""
    values = [r[key] for r in runs]
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{spec}} ({low:{spec}}-{high:{spec}})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="measured requests (20000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client connections (8)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per side (5)")
    parser.add_argument("--compare", type=Path, help="also the built-in balancer of this checkout")
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
    began = os.getloadavg()[0]
    result = asyncio.run(run(args.requests, args.concurrency, args.repeat, args.compare))
    print(
        f"{args.requests} requests x {args.repeat} runs per side, {args.concurrency} keep-alive "
        f"connections, 2 instances; medians (min-max); load average {began:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{'side':<9} {'req/s':>18} {'p50 ms':>8} {'p99 ms':>18} {'proxy CPU us/req':>22}")
    for side, runs in result["samples"].items():
        m = result["medians"][side]
        print(
            f"{side:<9} {spread(runs, 'rps', '.0f'):>18} {m['p50_ms']:>8.2f} "
            f"{spread(runs, 'p99_ms', '.2f'):>18} {spread(runs, 'cpu_us', '.0f'):>22}"
        )
    for side, r in result["ratios"].items():
        print(
            f"{side}/HAProxy: requests/s x{r['rps']:.2f}, p99 x{r['p99']:.2f}, "
            f"proxy CPU per request x{r['cpu']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
