"""A bounded HTTP load generator: a fixed number of GET requests over a few keep-alive
connections, then it stops by itself. A request fails on any error or a 5xx answer; failed
requests are never retried, so a failure the balancer causes is always counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    statuses: Counter = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)  # X-Version of each answer, in order
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    connections: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)


async def run_load(
    host: str,
    port: int,
    total: int,
    concurrency: int = 4,
    pause: float = 0.0,
    path: str = "/",
    until: asyncio.Event | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Send `total` requests from `concurrency` connections, each pausing `pause` s between
    requests, or fewer if `until` is set first; a connection the server closes is reopened
    for the next request. Answers are counted in `report` when given (readable meanwhile)."""
    report = LoadReport() if report is None else report
    remaining = [total]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while remaining[0] > 0 and not (until is not None and until.is_set()):
            remaining[0] -= 1
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                    report.connections += 1
                reader, writer = conn
                writer.write(request)
                await writer.drain()
                status, headers = await _read_head(reader)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                report.statuses[status] += 1
                if status >= 500:
                    report.failures.append(f"HTTP {status}: {body[:80]!r}")
                else:
                    report.latencies.append(time.perf_counter() - started)
                    report.versions.append(headers.get("x-version", "?"))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    conn = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                report.failures.append(f"{error.__class__.__name__}: {error}")
                if conn is not None:
                    conn[1].close()
                conn = None
            if pause:
                await asyncio.sleep(pause)
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return report


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers
