"""The demo's function: versions 1 and 2 behind alias `live`, a gateway and a steady trickle of
requests owned by the console process, and a canary from the console that moves the gauge."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine
from engine.functions import FunctionRegistry
from engine.model import DeploymentInfo
from engine.workspace import load_workspace
from tests.console.conftest import SIZE, screen_ready, wait_for
from tests.console.test_gauges import screen_rows
from tui.app import DeployDeckApp
from tui.demo import (
    ALIAS,
    FAULTY_ALIAS,
    FAULTY_APP,
    FAULTY_GROUP,
    FUNCTION,
    FUNCTION_APP,
    FUNCTION_GROUP,
    SERVICE_APP,
    SERVICE_GROUP,
    DemoTraffic,
    end_demo_processes,
    ensure_demo_workspace,
    traffic_for,
)
from tui.screens.deployment import DeploymentScreen

pytestmark = pytest.mark.xdist_group("demo")  # the demo takes ports from 8101 up


@pytest.fixture
def demo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "demo"
    monkeypatch.setenv("DEPLOYDECK_DEMO_HOME", str(home))
    yield home
    end_demo_processes(home)


def worker_pids(state: Path) -> list[int]:
    """Live processes whose command line runs the demo's function code."""
    out = subprocess.run(["pgrep", "-f", "handler.py"], capture_output=True, text=True).stdout
    pids = []
    for pid in map(int, out.split()):
        try:
            cwd = Path(f"/proc/{pid}/cwd").readlink()
        except OSError:
            continue
        if str(cwd).startswith(str(state)):
            pids.append(pid)
    return pids


async def deploy_registered(app: DeployDeckApp, application: str, group: str) -> DeploymentInfo:
    """A deployment of the application's (newest) registered revision to the group."""
    revision = next(r for r in app.engine.list_revisions(application))
    return await app.engine.create_deployment(
        CreateDeploymentRequest(application, group, registered_sha256=revision.revision.sha256)
    )


def test_the_demo_canary_moves_the_gauge_while_requests_flow(demo_home: Path) -> None:
    """Demo made, console open with its trickle, a canary on `hello` -> the gauge shows step 1
    of 2 with actual agreeing with set (10 %), then 100 % on version 2; on exit the gateway and
    its workers are gone."""
    path = ensure_demo_workspace(say=lambda _: None)
    workspace = load_workspace(path).unwrap()
    registry = FunctionRegistry(workspace.state_dir)
    assert sorted(registry.get(FUNCTION).versions) == ["1", "2", "3"]  # 3 fails every call
    assert registry.get(FUNCTION).aliases[ALIAS].version == "1"

    async def run() -> None:
        app = DeployDeckApp(workspace)
        async with app.run_test(size=SIZE) as pilot:
            created = await deploy_registered(app, FUNCTION_APP, FUNCTION_GROUP)
            assert created.options.time_scale == 20  # the demo group's, not asked for here
            app.open_deployment(created.id)
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="screen")

            def agreeing_at_10() -> bool:
                rows = screen_rows(app)
                found = re.search(r"10% set\s+(\d+)% actual", rows)
                calls = re.search(r"\((\d+) calls\)", rows)
                return (
                    "step 1 of 2" in rows
                    and found is not None
                    and abs(int(found.group(1)) - 10) <= 5
                    and calls is not None
                    and int(calls.group(1)) >= 20
                )

            await wait_for(pilot, agreeing_at_10, timeout=120, what="actual 10% at step 1")
            await wait_for(
                pilot,
                lambda: "step 2 of 2" in screen_rows(app) and "100% set" in screen_rows(app),
                timeout=120,
                what="the canary's last step",
            )
            final = await app.engine.wait(created.id, timeout=120)
            assert final.status == "Succeeded"

    with DemoTraffic(workspace.state_dir) as traffic:
        asyncio.run(run())
        assert registry.get(FUNCTION).aliases[ALIAS].version == "2"
        assert traffic.served.get("1", 0) > 0 and traffic.served.get("2", 0) > 0
        assert worker_pids(workspace.state_dir)  # warm workers serve the trickle until exit
    assert worker_pids(workspace.state_dir) == []


def test_the_demo_service_shifts_while_requests_flow(demo_home: Path) -> None:
    """Demo made (service web on web:1, three tasks), a linear shift to web:2 opened in the
    console with the trickle on -> the gauge shows both task sets with their counts, requests
    are answered by both revisions, the deployment succeeds."""
    path = ensure_demo_workspace(say=lambda _: None)
    workspace = load_workspace(path).unwrap()

    async def run() -> None:
        app = DeployDeckApp(workspace)
        async with app.run_test(size=SIZE) as pilot:
            revision = next(
                r
                for r in app.engine.list_revisions(SERVICE_APP)
                if r.revision.location.endswith("/ecs-web")
            )
            created = await app.engine.create_deployment(
                CreateDeploymentRequest(
                    SERVICE_APP, SERVICE_GROUP, registered_sha256=revision.revision.sha256
                )
            )
            app.open_deployment(created.id)
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="screen")

            def both_sets_shown() -> bool:
                rows = screen_rows(app)
                return (
                    re.search(r"Blue\s+PRIMARY\s+web:1 3/3 run", rows) is not None
                    and re.search(r"Green\s+ACTIVE\s+web:2 3/3 run", rows) is not None
                    and "step 2 of 10" in rows
                )

            try:
                await wait_for(pilot, both_sets_shown, timeout=180, what="both task sets")
            except AssertionError:
                print(screen_rows(app))
                raise
            final = await app.engine.wait(created.id, timeout=180)
            assert final.status == "Succeeded", final.error_message

    with traffic_for(path, workspace) as traffic:
        assert isinstance(traffic, DemoTraffic)
        asyncio.run(run())
        assert traffic.service_served.get("1", 0) > 0 and traffic.service_served.get("2", 0) > 0


def test_the_demo_alarm_stops_the_faulty_canary_and_puts_traffic_back(demo_home: Path) -> None:
    """Demo made, console open (its gateway on the port the alarm probes), the canary of
    faulty/beta sends 10 % to version 3, which fails every call -> the `errors` alarm's first
    reading after the shift is ALARM, the deployment ends Stopped (ALARM_ACTIVE), alias beta
    is back on version 2 alone, and the screen says so."""
    path = ensure_demo_workspace(say=lambda _: None)
    workspace = load_workspace(path).unwrap()
    registry = FunctionRegistry(workspace.state_dir)
    assert registry.get(FUNCTION).aliases[FAULTY_ALIAS].weights() == {"2": 1.0}

    async def run() -> str:
        app = DeployDeckApp(workspace)
        async with app.run_test(size=SIZE) as pilot:
            created = await deploy_registered(app, FAULTY_APP, FAULTY_GROUP)
            app.open_deployment(created.id)
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="screen")
            final = await app.engine.wait(created.id, timeout=180)
            assert final.status == "Stopped", final.error_message
            assert final.error_code == "ALARM_ACTIVE"

            def told() -> bool:
                rows = screen_rows(app)
                return (
                    "■ Stopped" in rows
                    and "errors ALARM" in rows
                    and re.search(r"v2 .*100% set", rows) is not None
                    and re.search(r"v3 .*  0% set", rows) is not None
                )

            await wait_for(pilot, told, timeout=60, what="the stop on the screen")
            return created.id

    with traffic_for(path, workspace) as traffic:
        assert isinstance(traffic, DemoTraffic)
        deployment = asyncio.run(run())
    assert registry.get(FUNCTION).aliases[FAULTY_ALIAS].weights() == {"2": 1.0}
    engine = Engine(workspace)
    try:
        events = [e.event for e in engine.journal(deployment)]
    finally:
        engine.close()
    shifts = [e for e in events if isinstance(e, ev.TrafficShifted)]
    assert [s.weight for s in shifts] == [0.1, 0.0]  # 10 % to version 3, then all back
    after = [e for e in events if isinstance(e, ev.AlarmEvaluated) and e.time > shifts[0].time]
    # within one evaluation interval: the reading under way at the shift may still be OK, the
    # next one (all its probes after the shift) is ALARM, and traffic goes back right after it
    alarm = next(e for e in after if e.state == "ALARM")
    assert len([e for e in after if e.time < alarm.time]) <= 1, after
    assert alarm.time <= shifts[1].time
    assert not [e for e in after if alarm.time < e.time < shifts[1].time]
