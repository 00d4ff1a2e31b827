"""The `http` alarm: probes of a URL kept in a sliding window, their error ratio or latency
compared with a threshold.

A probe is one GET (urllib in a worker thread, environment proxies ignored so a loopback probe
never leaves the machine). A probe that gets no answer (refused, reset, timed out) or a status
at or above the spec's `error_status` is an error. Probe times are stamped on the injected
clock, so the window slides with the deployment's time; the latency itself is measured in real
time, since it is the service's.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass

from engine.alarms.model import AlarmReading, AlarmState, HttpAlarmSpec
from engine.clock import Clock

# How much of an answer's body is read (the latency counts the whole answer, up to this).
BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Probe:
    at: float  # on the injected clock
    error: bool
    latency: float | None  # seconds; None when no answer came (other than a timeout)
    detail: str


class HttpAlarm:
    def __init__(self, spec: HttpAlarmSpec, clock: Clock) -> None:
        self._spec = spec
        self.clock = clock
        self.window: deque[Probe] = deque()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def spec(self) -> HttpAlarmSpec:
        return self._spec

    async def evaluate(self) -> AlarmReading:
        for _ in range(self._spec.probes):
            self.window.append(await self.probe())
        horizon = self.clock.now() - self._spec.window_seconds
        while self.window and self.window[0].at < horizon:
            self.window.popleft()
        return self._judge()

    async def probe(self) -> Probe:
        outcome = await asyncio.to_thread(self._get)
        return Probe(self.clock.now(), *outcome)

    def _get(self) -> tuple[bool, float | None, str]:
        """(error, latency, detail) of one GET; runs in a worker thread."""
        spec = self._spec
        started = time.monotonic()
        try:
            with self._opener.open(spec.url, timeout=spec.timeout_seconds) as answer:
                answer.read(BODY_LIMIT)
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
            error.close()
        except TimeoutError:
            return True, spec.timeout_seconds, f"no answer within {spec.timeout_seconds:g} s"
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                return True, spec.timeout_seconds, f"no answer within {spec.timeout_seconds:g} s"
            return True, None, f"no answer: {reason}"
        except (OSError, ValueError) as error:
            return True, None, f"no answer: {error}"
        latency = time.monotonic() - started
        return status >= spec.error_status, latency, f"HTTP {status}"

    def _judge(self) -> AlarmReading:
        spec = self._spec
        probes = list(self.window)
        last = probes[-1].detail if probes else "no probe yet"
        if len(probes) < spec.min_probes:
            return self._reading(
                AlarmState.INSUFFICIENT_DATA,
                None,
                f"{len(probes)} probe(s) in the last {spec.window_seconds:g} s, "
                f"{spec.min_probes} needed (last: {last})",
            )
        if spec.metric == "error_ratio":
            errors = sum(p.error for p in probes)
            value = errors / len(probes)
            seen = f"{errors} of {len(probes)} probes failed"
        else:
            latencies = sorted(p.latency for p in probes if p.latency is not None)
            if not latencies:
                return self._reading(
                    AlarmState.INSUFFICIENT_DATA,
                    None,
                    f"none of {len(probes)} probes got an answer (last: {last})",
                )
            value = percentile(latencies, spec.percentile)
            seen = f"p{spec.percentile:g} latency {value:.3f} s over {len(latencies)} answers"
        breached = spec.operator.breaches(value, spec.threshold)
        state = AlarmState.ALARM if breached else AlarmState.OK
        message = (
            f"{seen} in the last {spec.window_seconds:g} s: {value:.4g} is "
            f"{'' if breached else 'not '}{spec.operator.value} {spec.threshold:g} "
            f"(last probe: {last})"
        )
        return self._reading(state, value, message)

    def _reading(self, state: AlarmState, value: float | None, message: str) -> AlarmReading:
        return AlarmReading.of(self._spec, state, value, message, self.clock.now())


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
