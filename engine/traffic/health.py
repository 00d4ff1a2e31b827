"""HTTP health checks: one probe, and the pass/fail counting that turns probes into health."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine.clock import Clock
from engine.traffic.model import Health, HealthCheck
from engine.traffic.waits import within


async def probe(clock: Clock, host: str, port: int, check: HealthCheck) -> tuple[bool, str]:
    """GET check.path once; (passed, what happened). 2xx and 3xx pass."""
    try:
        return await within(clock, check.timeout_seconds, _get_status(host, port, check.path))
    except TimeoutError:
        return False, f"no answer within {check.timeout_seconds:g} s"
    except ConnectionRefusedError:
        return False, "connection refused"
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        return False, f"check failed: {error.__class__.__name__} {error}".strip()


async def _get_status(host: str, port: int, path: str) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: deploydeck-health\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readuntil(b"\r\n")
    finally:
        writer.close()
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"not an HTTP answer: {line[:40]!r}"
    status = int(parts[1])
    return 200 <= status < 400, f"HTTP {status}"


@dataclass
class HealthCounter:
    """Consecutive passes and failures against the thresholds, as a target group counts them."""

    check: HealthCheck
    health: Health = Health.HEALTHY
    passes: int = 0
    failures: int = 0
    detail: str = ""

    def restart(self) -> None:
        """Back in service: unhealthy until `healthy_threshold` passes in a row."""
        self.health = Health.INITIAL
        self.passes = self.failures = 0
        self.detail = ""

    def record(self, passed: bool, detail: str) -> bool:
        """Count one probe; True when the health changed."""
        before = self.health
        self.detail = detail
        if passed:
            self.passes += 1
            self.failures = 0
            if self.passes >= self.check.healthy_threshold:
                self.health = Health.HEALTHY
        else:
            self.failures += 1
            self.passes = 0
            if self.failures >= self.check.unhealthy_threshold:
                self.health = Health.UNHEALTHY
        return self.health is not before
