"""Each target group of a service's listeners checks its members with its own health check:
the one of the task definition its task set runs. Real tasks (tests/services/sample_task.py)
answering only their own health path, real HTTP through the listeners."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from engine.services import Service, ServiceRuntime, TaskDefinition, TaskDefinitions
from engine.traffic.model import Health, TrafficSettings
from tests.services.conftest import FAST_START, FAST_TRAFFIC, SAMPLE, settle
from tests.traffic.loadgen import LoadReport, run_load


def revision(definitions: TaskDefinitions, path: str, serves: str, probes: Path) -> TaskDefinition:
    """The next revision of the sample task, 2 tasks, declaring health path `path` and
    answering only `serves` of the /health... paths (each check noted under `probes`)."""
    return definitions.register(
        "web",
        [sys.executable, str(SAMPLE)],
        environment={"HEALTH_PATH": serves, "PROBE_DIR": str(probes)},
        desired_count=2,
        health_check_path=path,
    )


def probes_of(probes: Path, runtime: ServiceRuntime, index: int) -> dict[str, list[str]]:
    """The health checks (their paths) each task of the `index`th task set has answered so far."""
    tasks = runtime.task_sets()[index].tasks
    files = {t.task_id: probes / t.task_id.replace("/", "_") for t in tasks}
    return {i: f.read_text().split() if f.exists() else [] for i, f in files.items()}


def checked_on(path: str) -> TrafficSettings:
    """The tests' fast listener settings with health check path `path`."""
    return replace(FAST_TRAFFIC, health_check=replace(FAST_TRAFFIC.health_check, path=path))


@pytest.fixture
def probes(tmp_path: Path) -> Path:
    folder = tmp_path / "probes"
    folder.mkdir()
    return folder


async def test_blue_and_green_keep_their_own_health_paths_through_a_linear_shift(
    runtime, definitions, probes
):
    """Blue checked on /health-a and green on /health-b: a linear shift under steady load
    fails no request and no task is ever marked unhealthy."""
    # as each deployment does: the service's settings carry its task definition's path
    runtime.configure(checked_on("/health-a"), FAST_START)
    await runtime.create_primary(revision(definitions, "/health-a", "/health-a", probes))
    green_definition = revision(definitions, "/health-b", "/health-b", probes)
    runtime.configure(checked_on("/health-b"), FAST_START)
    await runtime.create_replacement(green_definition)
    unhealthy: list[str] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            for lb in (runtime.production, runtime.test):
                assert lb is not None
                for name, state in (await lb.states()).items():
                    if state.health is Health.UNHEALTHY:
                        unhealthy.append(f"{name}: {state.detail}")
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    host, port = runtime.production_address
    report = LoadReport()
    load = asyncio.ensure_future(
        run_load(host, port, total=10**6, concurrency=3, pause=0.002, until=done, report=report)
    )
    per_step: list[Counter] = []

    def step_over(before: dict[int, dict[str, list[str]]], answered: int) -> bool:
        return len(report.versions) + len(report.failures) >= answered + 60 and all(
            len(now) >= len(before[i][task]) + 3
            for i in (0, 1)
            for task, now in probes_of(probes, runtime, i).items()
        )

    try:
        await runtime.route_test_traffic()
        for percent in range(0, 101, 20):
            await runtime.shift_traffic(percent)
            # each step lasts until every task has answered 3 more checks (an unhealthy
            # threshold's worth and one) and the load has had 60 more answers
            before = {0: probes_of(probes, runtime, 0), 1: probes_of(probes, runtime, 1)}
            answered = len(report.versions) + len(report.failures)
            start = len(report.versions)
            await settle(partial(step_over, before, answered))
            per_step.append(Counter(report.versions[start:]))
    finally:
        done.set()
        await load
        await watcher
    assert not report.failures and report.ok > 360
    assert not unhealthy
    # each task set was checked on its own path only, from the listeners and at its start
    assert {p for paths in probes_of(probes, runtime, 0).values() for p in paths} == {"/health-a"}
    assert {p for paths in probes_of(probes, runtime, 1).values() for p in paths} == {"/health-b"}
    # traffic followed the weights: blue served until the last step, green from the second
    assert set(per_step[0]) == {"1"} and per_step[-1]["1"] <= 3  # the last in flight
    assert all(step["1"] > 0 and step["2"] > 0 for step in per_step[1:-1])
    assert {info.traffic_weight for info in runtime.task_sets()} == {0.0, 100.0}


async def test_a_green_failing_its_own_health_path_never_takes_production_traffic(
    tmp_path, definitions, probes
):
    """Green's own path /health-b starts failing while it would still pass the listener's
    default check -> its target group marks it unhealthy and a 50% shift sends it nothing."""
    traffic = checked_on("/")
    service = Service("web", production_port=0)
    sick = tmp_path / "green-sick"
    async with ServiceRuntime(
        service, tmp_path / "state", traffic=traffic, policy=FAST_START
    ) as rt:
        await rt.create_primary(revision(definitions, "/health-a", "/health-a", probes))
        green = definitions.register(
            "web",
            [sys.executable, str(SAMPLE)],
            environment={
                "HEALTH_PATH": "/health-b",
                "SICK_FLAG": str(sick),
                "PROBE_DIR": str(probes),
            },
            desired_count=2,
            health_check_path="/health-b",
        )
        await rt.create_replacement(green)
        green_tasks = [t.task_id for t in rt.task_sets()[1].tasks]
        sick.touch()
        since = {t: len(paths) for t, paths in probes_of(probes, rt, 1).items()}
        # three checks of each green task after it fell sick: two failures mark it unhealthy
        await settle(
            lambda: all(len(p) >= since[t] + 3 for t, p in probes_of(probes, rt, 1).items())
        )
        states = await rt.production.states()
        assert [states[t].health for t in green_tasks] == [Health.UNHEALTHY] * 2
        assert all(states[t].detail == "HTTP 503" for t in green_tasks)
        await rt.shift_traffic(50)
        host, port = rt.production_address
        report = await run_load(host, port, total=100, concurrency=2)
        assert not report.failures and Counter(report.versions) == {"1": 100}
        served = await rt.production.states()
        assert all(served[t].requests_served == 0 for t in green_tasks)
