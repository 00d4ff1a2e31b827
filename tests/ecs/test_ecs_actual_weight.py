"""Actual weight of an ECS shift: real HTTP requests at a steady rate through the service's
production listener while a linear shift runs; the run journals the share each target group
got against the weight set on it, and get-deployment and the plain renderer show both."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.functions.test_lambda_deployments import ok
from tests.services.test_host import Load

from .test_ecs_deployments import EcsWorkspace, linear_deployment, wait_for, wait_until_shifting

TOLERANCE = 0.05  # the gauge's promise over many requests
MEASURED = 8  # requests a figure must be measured over to be judged


def tolerance(calls: int) -> float:
    """How far actual may stray from set over `calls` requests: weighted round robin is exact
    over whole cycles, so a window cut anywhere in one is off by at most a request or so."""
    return max(TOLERANCE, 1.5 / calls)


@pytest.fixture
def workspace(tmp_path: Path) -> EcsWorkspace:
    return EcsWorkspace(tmp_path)


def test_a_linear_ecs_shift_measures_actual_weight_agreeing_with_set_at_each_step(
    workspace: EcsWorkspace,
) -> None:
    """steady requests through production during ECSLinear10PercentEvery3Minutes -> each step's
    TrafficMeasured has actual weight within 5 points of set; get-deployment and the plain
    renderer show set against actual"""
    deployment = linear_deployment(workspace, 40)  # each step lasts 4.5 s
    wait_until_shifting(workspace, deployment)
    production = workspace.task_sets(deployment)[-1]["production"]
    with Load(production) as load:
        seen: list[dict[str, Any]] = []

        def measured() -> bool:
            info = workspace.get(deployment)
            seen.append(info)
            shown = [t for t in info["ecsTarget"]["taskSetsInfo"] if "actualTrafficWeight" in t]
            return info.get("trafficGauge", {}).get("measuredCalls", 0) >= MEASURED and bool(shown)

        wait_for(measured)
        gauge = seen[-1]["trafficGauge"]
        for task_set in seen[-1]["ecsTarget"]["taskSetsInfo"]:  # set against actual, in percent
            off_by = abs(task_set["actualTrafficWeight"] - task_set["trafficWeight"]) / 100
            assert off_by <= tolerance(MEASURED), seen[-1]
        assert gauge["actualWeight"] is not None
        assert abs(gauge["actualWeight"] - gauge["setWeight"]) <= tolerance(MEASURED), gauge
        info = workspace.wait(deployment)
    assert info["status"] == "Succeeded", info
    assert load.answered() > 100 and set(load.revisions) == {"1", "2"}
    gauges = [e for e in workspace.journal(deployment) if e["kind"] == "TrafficMeasured"]
    judged = [g for g in gauges if g["calls"] >= MEASURED]
    assert all(g["function"] == "web" and g["alias"] == "production" for g in gauges)
    assert all(g["target_version"] == "web-tg-2" for g in gauges)
    off = [g for g in judged if abs(g["actual_weight"] - g["set_weight"]) > tolerance(g["calls"])]
    assert not off, off
    steps = {round(g["set_weight"], 2) for g in judged}
    assert len(steps) >= 5, gauges  # measured at most steps, not one figure repeated
    # the plain renderer says it in a line
    lines = ok(workspace.root, "journal", "--deployment-id", deployment)
    shown = re.findall(
        r"web:production: step \d+ of 10, .*set (\d+)%, actual (\d+)% of the last (\d+)", lines
    )
    assert shown, lines
    assert all(abs(int(s) - int(a)) <= 100 * tolerance(int(n)) + 1 for s, a, n in shown), lines
