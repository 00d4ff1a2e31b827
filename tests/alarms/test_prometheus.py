"""The prometheus alarm against a real Prometheus (Debian's) scraping a test exporter every
second: thresholds crossed, no data, several series, bad queries, an unreachable server."""

from __future__ import annotations

import pytest

from engine.alarms import (
    AlarmConfiguration,
    AlarmMonitor,
    AlarmState,
    Comparison,
    PrometheusAlarmSpec,
    make_alarm,
)
from engine.clock import RealClock
from tests.alarms.conftest import Exporter, Prometheus, free_port

pytestmark = pytest.mark.xdist_group("alarms-prometheus")


def spec(prometheus: Prometheus, query: str, threshold: float, **more) -> PrometheusAlarmSpec:
    return PrometheusAlarmSpec(
        name="errors", url=prometheus.url, query=query, threshold=threshold, **more
    )


async def evaluate(alarm_spec: PrometheusAlarmSpec):
    return await make_alarm(alarm_spec, RealClock()).evaluate()


async def test_query_crossing_its_threshold_fires_alarm(
    prometheus: Prometheus, exporter: Exporter
) -> None:
    alarm = spec(prometheus, "app_error_ratio", 0.5, timeout_seconds=2.5)
    exporter.lines = ["app_error_ratio 0.1"]
    prometheus.wait_for("app_error_ratio == 0.1")
    calm = await evaluate(alarm)
    assert (calm.state, calm.value, calm.threshold) == (AlarmState.OK, 0.1, 0.5)
    assert "is not > 0.5" in calm.message

    exporter.lines = ["app_error_ratio 0.9"]
    prometheus.wait_for("app_error_ratio == 0.9")
    firing = await evaluate(alarm)
    assert (firing.state, firing.value) == (AlarmState.ALARM, 0.9)
    assert 'app_error_ratio{instance="127.0.0.1:' in firing.message
    assert "= 0.9 is > 0.5" in firing.message


async def test_operators_compare_value_with_threshold(
    prometheus: Prometheus, exporter: Exporter
) -> None:
    exporter.lines = ["app_healthy_hosts 2"]
    prometheus.wait_for("app_healthy_hosts == 2")
    cases = {
        Comparison.GT: False,
        Comparison.GE: True,
        Comparison.LT: False,
        Comparison.LE: True,
        Comparison.EQ: True,
        Comparison.NE: False,
    }
    for comparison, fires in cases.items():
        reading = await evaluate(spec(prometheus, "app_healthy_hosts", 2, operator=comparison))
        assert reading.state is (AlarmState.ALARM if fires else AlarmState.OK), comparison


async def test_no_data_is_insufficient_data_unless_the_alarm_says_otherwise(
    prometheus: Prometheus,
) -> None:
    missing = "app_metric_nobody_exports"
    reading = await evaluate(spec(prometheus, missing, 1))
    assert reading.state is AlarmState.INSUFFICIENT_DATA
    assert reading.value is None
    assert "no data" in reading.message
    strict = await evaluate(spec(prometheus, missing, 1, no_data=AlarmState.ALARM))
    assert strict.state is AlarmState.ALARM


async def test_nan_values_count_as_no_data(prometheus: Prometheus) -> None:
    reading = await evaluate(spec(prometheus, "vector(0) / vector(0)", 0.5))
    assert reading.state is AlarmState.INSUFFICIENT_DATA
    assert "only NaN" in reading.message


async def test_a_scalar_query_is_compared(prometheus: Prometheus) -> None:
    reading = await evaluate(spec(prometheus, "scalar(vector(3))", 2))
    assert (reading.state, reading.value) == (AlarmState.ALARM, 3.0)


async def test_any_breaching_series_of_many_fires_and_is_the_one_shown(
    prometheus: Prometheus, exporter: Exporter
) -> None:
    exporter.lines = [
        'app_latency_seconds{pool="a"} 0.1',
        'app_latency_seconds{pool="b"} 0.7',
        'app_latency_seconds{pool="c"} 0.2',
    ]
    prometheus.wait_for("count(app_latency_seconds) == 3")
    firing = await evaluate(spec(prometheus, "app_latency_seconds", 0.5))
    assert (firing.state, firing.value) == (AlarmState.ALARM, 0.7)
    assert 'pool="b"' in firing.message
    assert "1 of 3 series breach" in firing.message
    calm = await evaluate(spec(prometheus, "app_latency_seconds", 0.9))
    assert (calm.state, calm.value) == (AlarmState.OK, 0.7)  # the nearest to breaching


async def test_a_query_prometheus_refuses_is_an_error_saying_why(prometheus: Prometheus) -> None:
    bad = await evaluate(spec(prometheus, "sum(rate(app_error_ratio[1m]", 1))
    assert bad.state is AlarmState.ERROR
    assert "bad_data" in bad.message and "parse error" in bad.message
    ranged = await evaluate(spec(prometheus, "up[1m]", 1))
    assert ranged.state is AlarmState.ERROR
    assert "matrix" in ranged.message and "rate()" in ranged.message


async def test_unreachable_prometheus_is_an_error_that_trips_unless_ignored() -> None:
    """Prometheus cannot be reached -> the alarm reads ERROR, which stops the deployment unless
    ignore_poll_alarm_failure is set."""
    down = PrometheusAlarmSpec(
        name="errors", url=f"http://127.0.0.1:{free_port()}", query="up", threshold=1
    )
    reading = await evaluate(down)
    assert reading.state is AlarmState.ERROR
    assert "cannot be reached" in reading.message and "refused" in reading.message

    strict = AlarmMonitor(AlarmConfiguration(alarms=(down,)), RealClock())
    await strict.check_now()
    tripped = strict.tripped()
    assert tripped is not None and tripped.state is AlarmState.ERROR

    lenient = AlarmMonitor(
        AlarmConfiguration(alarms=(down,), ignore_poll_alarm_failure=True), RealClock()
    )
    (seen,) = await lenient.check_now()
    assert seen.state is AlarmState.ERROR
    assert lenient.tripped() is None


async def test_monitor_stops_on_a_real_query_firing_while_it_polls(
    prometheus: Prometheus, exporter: Exporter
) -> None:
    """A Prometheus alarm crossing its threshold mid-deployment -> the polling monitor trips
    with the ALARM reading."""
    exporter.lines = ["app_5xx_ratio 0"]
    prometheus.wait_for("app_5xx_ratio == 0")
    config = AlarmConfiguration(
        alarms=(spec(prometheus, "app_5xx_ratio", 0.05),), interval_seconds=0.2
    )
    readings = []
    monitor = AlarmMonitor(config, RealClock(), readings.append)
    async with monitor:
        (first,) = await monitor.check_now()
        assert first.state is AlarmState.OK
        exporter.lines = ["app_5xx_ratio 0.25"]
        tripped = await monitor.wait_tripped()
    assert (tripped.state, tripped.value) == (AlarmState.ALARM, 0.25)
    assert readings[-1] == tripped
    assert [r.state for r in readings].count(AlarmState.ALARM) == 1


async def test_observe_only_prometheus_alarm_is_reported_but_never_trips(
    prometheus: Prometheus, exporter: Exporter
) -> None:
    exporter.lines = ["app_queue_depth 50"]
    prometheus.wait_for("app_queue_depth == 50")
    config = AlarmConfiguration(
        alarms=(spec(prometheus, "app_queue_depth", 10, observe_only=True),)
    )
    readings = []
    monitor = AlarmMonitor(config, RealClock(), readings.append)
    (reading,) = await monitor.check_now()
    assert reading.state is AlarmState.ALARM and reading.observe_only
    assert readings == [reading]
    assert "(observe-only) is ALARM" in reading.describe()
    assert monitor.tripped() is None
