"""The http alarm probing a real web site whose error rate and latency the test switches; the
window slides on the injected clock."""

from __future__ import annotations

from engine.alarms import AlarmState, HttpAlarmSpec, make_alarm
from engine.clock import ManualClock
from tests.alarms.conftest import Site, free_port


def errors_alarm(url: str, **more) -> HttpAlarmSpec:
    settings = dict(threshold=0.25, window_seconds=60, probes=4, min_probes=4, timeout_seconds=2)
    settings.update(more)
    return HttpAlarmSpec(name="errors", url=url, **settings)


async def test_error_ratio_over_the_window_fires_and_clears_as_the_window_slides(
    site: Site,
) -> None:
    clock = ManualClock()
    alarm = make_alarm(errors_alarm(site.url), clock)
    healthy = await alarm.evaluate()
    assert (healthy.state, healthy.value, healthy.threshold) == (AlarmState.OK, 0.0, 0.25)
    assert "0 of 4 probes failed" in healthy.message

    site.error_ratio = 1.0
    await clock.advance(10)
    firing = await alarm.evaluate()
    assert (firing.state, firing.value) == (AlarmState.ALARM, 0.5)
    assert "4 of 8 probes failed" in firing.message and "HTTP 500" in firing.message

    # Healthy again: the failed probes still count until they leave the 60 s window.
    site.error_ratio = 0.0
    await clock.advance(40)
    still = await alarm.evaluate()
    assert (still.state, still.value) == (AlarmState.ALARM, 4 / 12)
    await clock.advance(25)  # t=75: the probes of t=0 and t=10 are now past the 60 s window
    cleared = await alarm.evaluate()
    assert (cleared.state, cleared.value) == (AlarmState.OK, 0.0)
    assert "0 of 8 probes failed" in cleared.message


async def test_a_partial_error_rate_is_measured_as_a_ratio(site: Site) -> None:
    site.error_ratio = 0.25
    reading = await make_alarm(
        errors_alarm(site.url, probes=20, min_probes=20, threshold=0.2), ManualClock()
    ).evaluate()
    assert (reading.state, reading.value) == (AlarmState.ALARM, 0.25)
    assert site.served == 20


async def test_too_few_probes_in_the_window_is_insufficient_data(site: Site) -> None:
    clock = ManualClock()
    alarm = make_alarm(errors_alarm(site.url, probes=1, min_probes=3), clock)
    first = await alarm.evaluate()
    assert first.state is AlarmState.INSUFFICIENT_DATA
    assert "1 probe(s) in the last 60 s, 3 needed" in first.message
    await alarm.evaluate()
    third = await alarm.evaluate()
    assert third.state is AlarmState.OK


async def test_latency_percentile_against_threshold(site: Site) -> None:
    clock = ManualClock()
    spec = HttpAlarmSpec(
        name="slow",
        url=site.url,
        metric="latency",
        percentile=50,
        threshold=0.15,
        probes=3,
        min_probes=3,
        window_seconds=5,
    )
    alarm = make_alarm(spec, clock)
    fast = await alarm.evaluate()
    assert fast.state is AlarmState.OK and fast.value is not None and fast.value < 0.15
    site.delay = 0.3
    await clock.advance(10)
    slow = await alarm.evaluate()
    assert slow.state is AlarmState.ALARM
    assert slow.value is not None and slow.value >= 0.3
    assert "p50 latency" in slow.message


async def test_a_probe_without_answer_in_time_is_an_error_counted_at_its_timeout(
    site: Site,
) -> None:
    site.delay = 1.0
    reading = await make_alarm(
        errors_alarm(site.url, probes=1, min_probes=1, timeout_seconds=0.2), ManualClock()
    ).evaluate()
    assert (reading.state, reading.value) == (AlarmState.ALARM, 1.0)
    assert "no answer within 0.2 s" in reading.message
    latency = await make_alarm(
        HttpAlarmSpec(
            name="slow",
            url=site.url,
            metric="latency",
            threshold=0.1,
            probes=1,
            min_probes=1,
            timeout_seconds=0.2,
        ),
        ManualClock(),
    ).evaluate()
    assert (latency.state, latency.value) == (AlarmState.ALARM, 0.2)


async def test_a_site_that_refuses_connections_fires_the_error_ratio() -> None:
    """The site behind the alarm is down (connection refused) -> every probe is an error and
    the alarm fires."""
    reading = await make_alarm(
        errors_alarm(f"http://127.0.0.1:{free_port()}/", probes=3, min_probes=3), ManualClock()
    ).evaluate()
    assert (reading.state, reading.value) == (AlarmState.ALARM, 1.0)
    assert "no answer" in reading.message and "refused" in reading.message
