"""Actual weight: real HTTP calls at a steady rate through a gateway; the share each version got,
as read from the gateways' ledgers by another reader, tracks the weight set on the alias."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engine.functions import FunctionGateway, FunctionRegistry
from engine.functions.meter import MEASURE_CALLS, ledger_folder, measured

from .test_gateway import publish_two
from .test_lambda_deployments import Workspace, ok

T = TypeVar("T")
TOLERANCE = 0.05  # smooth weighted round-robin keeps far closer; this is the gauge's promise


class SteadyCalls:
    """Invokes `qualified` over HTTP at a steady rate from a thread, keeping the versions run."""

    def __init__(self, url: str, qualified: str, per_second: float = 25.0) -> None:
        name, qualifier = qualified.split(":")
        self.target = f"{url}/2015-03-31/functions/{name}/invocations?Qualifier={qualifier}"
        self.pause = 1 / per_second
        self.versions: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._call, daemon=True)
        self.thread.start()

    def _call(self) -> None:
        while not self.done.is_set():
            request = urllib.request.Request(self.target, data=b"{}")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self.versions.append(response.headers["X-Amz-Executed-Version"])
            except OSError:
                pass  # the gateway closed with its run: the load ends with it
            self.done.wait(self.pause)  # pacing the load, not waiting for a condition

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    async def stop_async(self) -> None:
        """Stop from the loop serving the gateway (a blocking join would hold its answer)."""
        self.done.set()
        await asyncio.to_thread(self.thread.join)


@contextmanager
def steady_calls(url: str, qualified: str) -> Iterator[SteadyCalls]:
    load = SteadyCalls(url, qualified)
    try:
        yield load
    finally:
        load.stop()


async def until(read: Callable[[], T], ok: Callable[[T], bool], what: str) -> T:
    """Poll `read` until `ok` holds; a generous deadline only turns a hang into a failure."""
    deadline = time.monotonic() + 120
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"never: {what} (last {value!r})"
        await asyncio.sleep(0.05)


async def test_actual_weight_tracks_set_weight_at_a_steady_rate(registry, tmp_path):
    """25/75 then 60/40 on the alias -> the ledgers' shares agree within 5 points, measured
    only from calls routed since the shift."""
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "1", {"2": 0.25})
    async with FunctionGateway(registry) as gateway:
        load = SteadyCalls(gateway.url, "hello:live")
        try:
            first = await until(
                lambda: measured(registry.root, "hello", "live"),
                lambda m: m.calls >= 40,
                "40 calls measured",
            )
            share = first.share("2")
            assert share is not None and abs(share - 0.25) <= TOLERANCE, first
            registry.set_alias("hello", "live", "1", {"2": 0.6})
            shifted = len(load.versions)
            # the window restarts at the shift: it fills with calls routed at 60 % only
            await until(lambda: len(load.versions), lambda n: n >= shifted + 50, "50 calls more")
        finally:
            await load.stop_async()
        settled = gateway.measured_counts("hello", "live")
        after = await until(
            lambda: measured(registry.root, "hello", "live"),
            lambda m: dict(m.counts) == settled,
            "the ledger written after the last call",
        )
        share = after.share("2")
        assert share is not None and abs(share - 0.6) <= TOLERANCE, after
        assert after.calls >= 48 and set(load.versions) == {"1", "2"}
    # closing the gateway removes its ledger: nothing is measured any more
    assert list(ledger_folder(registry.root, "hello").glob("*.json")) == []
    assert measured(registry.root, "hello", "live").calls == 0


async def test_the_window_keeps_the_last_200_calls(registry, tmp_path):
    """More calls than the window holds -> only the last MEASURE_CALLS are counted."""
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "1", {"2": 0.5})
    async with FunctionGateway(registry) as gateway:
        for _ in range(MEASURE_CALLS + 50):
            await gateway.invoke("hello:live", b"{}", invocation_type="DryRun")
        assert gateway.measured_counts("hello", "live") == {"1": 100, "2": 100}


def test_a_dead_silent_or_outdated_gateways_ledger_counts_for_nothing(tmp_path: Path) -> None:
    """A ledger whose gateway died, one not rewritten within the window, or one routed by
    weights set before -> not measured."""
    registry = FunctionRegistry(tmp_path / "state")
    folder = ledger_folder(registry.root, "hello")
    folder.mkdir(parents=True)
    now = {"weights": {"1": 0.75, "2": 0.25}, "counts": {"1": 3, "2": 1}}
    before = {"weights": {"1": 1.0}, "counts": {"1": 40}}
    (folder / "mine.json").write_text(json.dumps({"pid": os.getpid(), "aliases": {"live": now}}))
    (folder / "other.json").write_text(
        json.dumps({"pid": os.getpid(), "aliases": {"live": before}})
    )
    set_now = {"1": 0.75, "2": 0.25}
    assert dict(measured(registry.root, "hello", "live", set_now).counts) == {"1": 3, "2": 1}
    assert dict(measured(registry.root, "hello", "live").counts) == {"1": 43, "2": 1}
    dead = {"pid": 2**22 + 12345, "aliases": {"live": now}}  # above pid_max: no such process
    (folder / "dead.json").write_text(json.dumps(dead))
    (folder / "torn.json").write_text("{")
    assert dict(measured(registry.root, "hello", "live", set_now).counts) == {"1": 3, "2": 1}
    old = time.time() - 60
    os.utime(folder / "mine.json", (old, old))
    assert measured(registry.root, "hello", "live", set_now).share("2") is None


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def test_a_canary_journals_its_gauge_and_get_deployment_shows_set_and_actual(
    workspace: Workspace,
) -> None:
    """Calls at a steady rate through the run's gateway during a canary -> TrafficMeasured in
    the journal and `get-deployment --output json` agree: actual within 5 points of set."""
    revision = workspace.revision("v2", 1, 2)
    deployment = workspace.deploy(
        revision,
        "--deployment-config-name",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "--time-scale",
        "20",  # the 10 % phase lasts 15 s
    )
    url = _wait(lambda: workspace.registry.gateway_url())
    with steady_calls(url, "hello:live"):
        gauge = _wait(lambda: _measured_gauge(workspace, deployment))
    assert gauge["setWeight"] == 0.1 and gauge["step"] == 1 and gauge["steps"] == 2
    assert abs(gauge["actualWeight"] - 0.1) <= TOLERANCE, gauge
    info = workspace.wait(deployment)
    assert info["status"] == "Succeeded"
    gauges = [e for e in workspace.journal(deployment) if e["kind"] == "TrafficMeasured"]
    measured_at_10 = [g for g in gauges if g["set_weight"] == 0.1 and g["calls"] >= 20]
    assert measured_at_10, gauges
    assert all(abs(g["actual_weight"] - 0.1) <= TOLERANCE for g in measured_at_10)
    assert gauges[-1]["step"] == 2 and gauges[-1]["next_shift_at"] is None
    # the plain renderer says it in a line: step, set and actual
    lines = ok(workspace.root, "journal", "--deployment-id", deployment)
    shown = re.findall(r"hello:live: step 1 of 2, version 2 set 10%, actual (\d+)% of", lines)
    assert any(abs(int(p) - 10) <= 5 for p in shown), lines


def _measured_gauge(workspace: Workspace, deployment: str) -> dict[str, Any] | None:
    gauge = workspace.get(deployment).get("trafficGauge")
    if gauge is None or gauge["setWeight"] != 0.1 or gauge["measuredCalls"] < 30:
        return None
    return gauge


def _wait(read: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + 120
    while (value := read()) is None:
        assert time.monotonic() < deadline, "never came"
        time.sleep(0.05)
    return value
