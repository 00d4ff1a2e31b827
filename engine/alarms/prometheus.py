"""The `prometheus` alarm: a PromQL instant query (`GET /api/v1/query`) compared with a
threshold.

What an answer means:
- a scalar: its value is compared;
- an instant vector of one series: its value is compared;
- a vector of several series: each series is compared on its own and the alarm fires when any
  one breaches (as an alerting rule fires per series); the reading shows the breaching series
  with its labels, or else the one nearest to breaching;
- no data (an empty vector, or only NaN values, such as an error ratio with no requests):
  the spec's `no_data` state, INSUFFICIENT_DATA by default, which never stops a deployment.
  Write `no_data: ALARM` (or `absent(...)` in the query) when silence itself is the danger;
- a range vector or a string: ERROR, since it cannot be compared (drop the `[5m]` range or
  wrap it in a function such as rate());
- Prometheus unreachable, an HTTP or query error, an answer that is not Prometheus's JSON, no
  answer within `timeout_seconds`: ERROR, saying why.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from engine.alarms.model import AlarmReading, AlarmState, Comparison, PrometheusAlarmSpec
from engine.clock import Clock

ANSWER_LIMIT = 4 * 1024 * 1024


class QueryError(Exception):
    """The query could not be answered: the message says why, for the reading."""


@dataclass(frozen=True)
class Sample:
    labels: str  # `{job="app",code="500"}`, empty for a scalar
    value: float


class PrometheusAlarm:
    def __init__(self, spec: PrometheusAlarmSpec, clock: Clock) -> None:
        self._spec = spec
        self.clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def spec(self) -> PrometheusAlarmSpec:
        return self._spec

    async def evaluate(self) -> AlarmReading:
        spec = self._spec
        try:
            samples = await asyncio.to_thread(self._query)
        except QueryError as error:
            return self._reading(AlarmState.ERROR, None, str(error))
        numbers = [s for s in samples if not math.isnan(s.value)]
        if not numbers:
            what = "no data" if not samples else "only NaN values"
            return self._reading(spec.no_data, None, f"the query returned {what}")
        breaching = [s for s in numbers if spec.operator.breaches(s.value, spec.threshold)]
        shown = _worst(breaching or numbers, spec.operator)
        state = AlarmState.ALARM if breaching else AlarmState.OK
        series = f" of {len(numbers)} series" if len(numbers) > 1 else ""
        which = f" ({len(breaching)}{series} breach)" if breaching and series else series
        message = (
            f"{shown.labels or 'value'} = {shown.value:g} is "
            f"{'' if breaching else 'not '}{spec.operator.value} {spec.threshold:g}{which}"
        )
        return self._reading(state, shown.value, message)

    def _query(self) -> list[Sample]:
        """The query's samples; runs in a worker thread."""
        spec = self._spec
        params = urllib.parse.urlencode(
            {"query": spec.query, "timeout": f"{spec.timeout_seconds:g}"}
        )
        url = f"{spec.url.rstrip('/')}/api/v1/query?{params}"
        where = f"Prometheus at {spec.url}"
        try:
            with self._opener.open(url, timeout=spec.timeout_seconds) as answer:
                body = answer.read(ANSWER_LIMIT)
        except urllib.error.HTTPError as error:
            # Prometheus answers query errors with a status and a JSON body saying why.
            body = error.read(ANSWER_LIMIT)
            error.close()
            detail = _error_text(body) or f"HTTP {error.code}"
            raise QueryError(f"{where} refused the query: {detail}") from None
        except urllib.error.URLError as error:
            raise QueryError(f"{where} cannot be reached: {error.reason}") from None
        except (TimeoutError, OSError) as error:
            reason = "no answer in time" if isinstance(error, TimeoutError) else error
            raise QueryError(f"{where} cannot be reached: {reason}") from None
        except ValueError as error:
            raise QueryError(f"{where}: {error}") from None
        try:
            reply = json.loads(body)
            if reply.get("status") != "success":
                detail = _error_text(body) or f"status {reply.get('status')!r}"
                raise QueryError(f"{where} refused the query: {detail}")
            return _samples(reply["data"])
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise QueryError(f"{where} gave an answer that is not Prometheus's JSON") from None

    def _reading(self, state: AlarmState, value: float | None, message: str) -> AlarmReading:
        return AlarmReading.of(self._spec, state, value, message, self.clock.now())


def _samples(data: dict) -> list[Sample]:
    kind = data["resultType"]
    result = data["result"]
    if kind == "scalar":
        return [Sample("", float(result[1]))]
    if kind == "vector":
        return [Sample(_labels(item["metric"]), float(item["value"][1])) for item in result]
    raise QueryError(
        f"the query returns a {kind}, which cannot be compared with a threshold; make it an "
        "instant vector or a scalar (drop a [range] or wrap it in a function such as rate())"
    )


def _labels(metric: dict) -> str:
    name = metric.get("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels else name


def _worst(samples: list[Sample], comparison: Comparison) -> Sample:
    """The sample furthest in the alarm's direction (highest for > and >=, lowest for < and
    <=, the first for == and !=)."""
    if comparison in (Comparison.GT, Comparison.GE):
        return max(samples, key=lambda s: s.value)
    if comparison in (Comparison.LT, Comparison.LE):
        return min(samples, key=lambda s: s.value)
    return samples[0]


def _error_text(body: bytes) -> str:
    try:
        reply = json.loads(body)
        return f"{reply['errorType']}: {reply['error']}"
    except (ValueError, KeyError, TypeError):
        return ""
