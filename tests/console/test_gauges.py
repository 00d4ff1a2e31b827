"""The traffic gauge of a Lambda deployment on the deployment screen: a canned journal (fixed
times, frozen console clock) for the snapshot; new journal events for the live Pilot checks."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import yaml
from textual.pilot import Pilot

import engine.store as store_module
from engine import events as ev
from engine.api import Engine
from engine.clock import ManualClock
from engine.model import ComputePlatform, DeploymentInfo, DeploymentOptions, RevisionRef
from engine.workspace import load_workspace
from tests.console.conftest import screen_ready, wait_for
from tests.raw_store import raw_store
from tests.tui.canned import NOW, ROOT
from tui.app import DeployDeckApp
from tui.render.plain import PlainRenderer
from tui.render.state import FleetState
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.widgets.weight_gauge import gauge_text

pytestmark = pytest.mark.xdist_group("snapshots")  # the fixed folders under ROOT

GAUGED = "d-GAUGE0001"
LIFECYCLE = ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")
APPSPEC = (
    "version: 0.0\nResources:\n  - helloFunction:\n      Type: AWS::Lambda::Function\n"
    '      Properties:\n        Name: "hello"\n        Alias: "live"\n'
    '        CurrentVersion: "1"\n        TargetVersion: "2"\n'
    'Hooks:\n  - BeforeAllowTraffic: "pre"\n  - AfterAllowTraffic: "post"\n'
)
T0 = NOW - 200.0  # the deployment's start on its (x60) clock
MEASURED_AT = NOW - 1.0
ORIGIN = T0 + 0.01  # its engine took charge: the run's clock and the wall clock agree here
# the console's (wall) clock: the run's clock (x60 from ORIGIN) is at the last measurement
WALL_NOW = ORIGIN + (MEASURED_AT - ORIGIN) / 60
NEXT_SHIFT = MEASURED_AT + 42.0


def _events(revision: RevisionRef) -> list[ev.Event]:
    info = DeploymentInfo(
        id=GAUGED,
        application="fn",
        deployment_group="live",
        config_name="CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
        status="Created",
        revision=revision,
        creator="user",
        create_time=T0,
        options=DeploymentOptions(time_scale=60.0),
        compute_platform=ComputePlatform.LAMBDA,
    )
    d = GAUGED
    made: list[ev.Event] = [
        ev.DeploymentCreated(d, T0, info),
        ev.EngineAttached(d, ORIGIN, os.getpid()),  # live: this process is its engine
        ev.InstancesTargeted(d, T0 + 0.02, ("hello",), ("lambda:live",), LIFECYCLE, 0),
        ev.DeploymentStatusChanged(d, T0 + 0.03, "InProgress"),
        ev.InstanceStatusChanged(d, T0 + 0.04, "hello", "InProgress"),
    ]
    t = T0 + 0.05
    for event in ("Start", "BeforeAllowTraffic"):
        made.append(ev.LifecycleEventStarted(d, t, "hello", event))
        made.append(ev.LifecycleEventFinished(d, t + 1.5, "hello", event, "Succeeded"))
        t += 2
    made.append(ev.LifecycleEventStarted(d, t, "hello", "AllowTraffic"))
    for step in range(3):
        made.append(
            ev.TrafficShifted(d, t + 60 * step, "hello", "live", "1", "2", 0.1 * (step + 1))
        )
    made.append(
        ev.ShiftProgressed(d, t + 120, "shifting", 3, 10, 0.3, NEXT_SHIFT, NEXT_SHIFT - t - 120)
    )
    made.append(ev.AlarmEvaluated(d, MEASURED_AT - 0.5, "errors", "OK", 0.0, 0.05, "0 <= 0.05"))
    made.append(
        ev.TrafficMeasured(d, MEASURED_AT, "hello", "live", "2", 0.3, 0.29, 200, 3, 10, NEXT_SHIFT)
    )
    return made


def build(name: str) -> Path:
    """/tmp/deploydeck-snapshots/<name>: a Lambda application `fn` (group `live`) with one
    deployment, d-GAUGE0001, at step 3 of a linear shift, run at x60."""
    folder = ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "revision").mkdir(parents=True)
    for path in (folder, folder / "revision"):
        path.chmod(0o755)
    appspec = folder / "revision" / "appspec.yaml"
    appspec.write_text(APPSPEC)
    appspec.chmod(0o644)
    document = {
        "applications": {
            "fn": {"compute_platform": "Lambda", "deployment_groups": {"live": {}}},
        }
    }
    path = folder / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    engine = Engine(load_workspace(path).unwrap())
    try:
        stamp = SimpleNamespace(time=lambda: T0 - 3600)
        with patch.object(store_module, "time", stamp):
            revision = engine.register_revision("fn", folder / "revision", "directory", "v2")
        raw_store(engine).append_many(_events(revision))
    finally:
        engine.close()
    return path


def screen_rows(app: DeployDeckApp) -> str:
    """The screen as lines of text, from the app's SVG export (a row's pieces joined)."""
    svg = app.export_screenshot()
    rows: dict[float, list[str]] = {}
    for match in re.finditer(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg, flags=re.S):
        piece = html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).replace("\xa0", " ")
        rows.setdefault(float(match.group(1)), []).append(piece)
    return "\n".join("".join(pieces) for _, pieces in sorted(rows.items()))


def make_app(name: str) -> DeployDeckApp:
    app = DeployDeckApp(load_workspace(build(name)).unwrap(), clock=ManualClock(WALL_NOW))
    app.animation_level = "none"
    return app


def opened(app: DeployDeckApp, deployment: str = GAUGED) -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        app.open_deployment(deployment)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the screen")
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await wait_for(pilot, lambda: screen.weight_gauge.display, what="the gauge shown")
        await pilot.pause()

    return run_before


def test_gauge_at_80x24(snap_compare) -> None:
    """d-GAUGE0001 at 80x24: both versions' bars, set against actual, step 3 of 10 with the
    countdown in deployment time and real time (x60), the hooks and the alarm light."""
    app = make_app("gauge-small")
    assert snap_compare(app, terminal_size=(80, 24), run_before=opened(app))


async def test_the_gauge_follows_the_journal(tmp_path: Path) -> None:
    """New TrafficShifted/TrafficMeasured/AlarmEvaluated in the journal -> the open screen's
    gauge shows the new step, set and actual weight and the alarm light in ALARM."""
    app = make_app("gauge-live")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app)(pilot)
        text = screen_rows(app)
        assert "hello:live  step 3 of 10 · next shift in 42s (time x60: 0.7s real)" in text
        assert "30% set   29% actual" in text and "70% set   71% actual" in text
        assert "errors OK" in text
        engine = Engine(load_workspace(ROOT / "gauge-live" / "deploydeck.yml").unwrap())
        try:
            t = NOW + 1
            raw_store(engine).append_many(
                [
                    ev.TrafficShifted(GAUGED, t, "hello", "live", "1", "2", 0.4),
                    ev.ShiftProgressed(GAUGED, t, "shifting", 4, 10, 0.4, t + 60, 60.0),
                    ev.AlarmEvaluated(GAUGED, t, "errors", "ALARM", 0.2, 0.05, "0.2 > 0.05"),
                    ev.TrafficMeasured(
                        GAUGED, t, "hello", "live", "2", 0.4, 0.4, 60, 4, 10, t + 60
                    ),
                ]
            )
        finally:
            engine.close()
        await wait_for(pilot, lambda: "step 4 of 10" in screen_rows(app), what="step 4")
        text = screen_rows(app)
        assert "40% set   40% actual" in text and "60% set   60% actual" in text
        assert "errors ALARM" in text


def test_gauge_text_and_plain_lines_say_the_same_figures() -> None:
    """The fold of the canned journal -> the gauge's lines fit 80 columns; the plain renderer
    says step, set, actual and the next shift in one line."""
    state = FleetState()
    revision = RevisionRef("0" * 64, "directory", "/tmp/r")
    lines: list[str] = []
    plain = PlainRenderer(lines.append)
    for event in _events(revision):
        state.apply(event)
        plain.render(event)
    view = state.deployments[GAUGED]
    text = gauge_text(view, MEASURED_AT, 78).plain
    assert all(len(line) <= 78 for line in text.splitlines()), text
    assert "step 3 of 10 · next shift in 42s (time x60: 0.7s real)" in text
    assert "hooks ✔ ok BeforeAllow  ◌ run Allow  ◷ wait AfterAllow" in text
    assert lines[-1].endswith(
        "hello:live: step 3 of 10, version 2 set 30%, actual 29% of the last 200 call(s), "
        "next shift in 42 s"
    )
    # a replay's clock is the journal's: the countdown is what was left at that moment
    replayed = gauge_text(view, MEASURED_AT + 12, 78).plain
    assert "next shift in 30s (time x60: 0.5s real)" in replayed


ECS_GAUGED = "d-ECSGAUGE2"


def _ecs_events(measured: float | None, pending: int = 0) -> list[ev.Event]:
    """An ECS deployment at step 3 of a linear shift (30 % on green, `pending` of its 3 tasks
    still starting), its production listener measured at `measured` of 150 requests."""
    revision = RevisionRef("0" * 64, "directory", "/tmp/r")
    info = DeploymentInfo(
        id=ECS_GAUGED,
        application="svc",
        deployment_group="live",
        config_name="CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
        status="Created",
        revision=revision,
        creator="user",
        create_time=T0,
        options=DeploymentOptions(time_scale=20.0),
        compute_platform=ComputePlatform.ECS,
    )
    d = info.id
    lifecycle = ("BeforeInstall", "Install", "AllowTestTraffic", "AfterAllowTestTraffic")
    blue = ev.TaskSetView(
        "ts-1", "Blue", "PRIMARY", "task-definition/web:1", "web-tg-1", 3, 0, 3, 70.0, 0.0
    )
    green = ev.TaskSetView(
        "ts-2",
        "Green",
        "ACTIVE",
        "task-definition/web:2",
        "web-tg-2",
        3,
        pending,
        3 - pending,
        30.0,
        100.0,
    )
    return [
        ev.DeploymentCreated(d, T0, info),
        ev.EngineAttached(d, T0 + 0.01, os.getpid()),  # live: this process is its engine
        ev.InstancesTargeted(d, T0, ("web",), ("ecs:web",), (*lifecycle, "AllowTraffic"), 0),
        ev.DeploymentStatusChanged(d, T0 + 0.03, "InProgress"),
        ev.LifecycleEventFinished(d, T0 + 5, "web", "AfterAllowTestTraffic", "Succeeded"),
        ev.TaskSetsChanged(d, T0 + 6, "web", "127.0.0.1:8201", "127.0.0.1:8202", (blue, green)),
        ev.ShiftProgressed(d, T0 + 7, "shifting", 3, 10, 0.3, T0 + 40, 42.0),
        ev.TrafficMeasured(
            d, T0 + 8, "web", "production", "web-tg-2", 0.3, measured, 150, 3, 10, T0 + 40
        ),
    ]


def test_an_ecs_gauge_shows_both_task_sets_with_counts_and_both_listeners() -> None:
    """An ECS deployment's fold -> a row per task set (label, status, definition, running of
    desired, production and test weights) within 78 columns, the step, a held shift said."""
    d = ECS_GAUGED
    state = FleetState()
    held = ev.ShiftProgressed(d, T0 + 7, "held", 3, 10, 0.3, None, 42.0, "hold")
    for event in (*_ecs_events(None, pending=1)[:-2], held):
        state.apply(event)
    text = gauge_text(state.deployments[d], T0 + 7, 78).plain
    assert all(len(line) <= 78 for line in text.splitlines()), text
    assert "web  production 127.0.0.1:8201  test 127.0.0.1:8202" in text
    assert "step 3 of 10 · HELD: next shift 42s (time x20: 2.1s real) after resume" in text
    assert re.search(r"Blue  PRIMARY  web:1 3/3 run █+·+  70% prod  —   act    0% test", text)
    assert re.search(
        r"Green ACTIVE   web:2 2/3 run 1 pend █+·+  30% prod  —   act  100% test", text
    )
    assert "✔ ok AfterTest" in text


def test_an_ecs_gauge_shows_set_against_actual_production_weight() -> None:
    """An ECS deployment whose production listener was measured -> each task set's row shows
    its set and actual production weight within 78 columns, over how many requests; a shift
    journaled since (the set weight moved) hides the stale figure."""
    state = FleetState()
    for event in _ecs_events(0.32):
        state.apply(event)
    view = state.deployments[ECS_GAUGED]
    text = gauge_text(view, T0 + 8, 78).plain
    assert all(len(line) <= 78 for line in text.splitlines()), text
    assert re.search(r"Blue  PRIMARY  web:1 3/3 run █+·+  70% prod  68% act    0% test", text)
    assert re.search(r"Green ACTIVE   web:2 3/3 run █+▒+·+  30% prod  32% act  100% test", text)
    assert "actual over the last 150 requests" in text
    assert view.task_sets is not None
    blue, green = view.task_sets.task_sets
    shifted = (
        dataclasses.replace(blue, traffic_weight=60.0),
        dataclasses.replace(green, traffic_weight=40.0),
    )
    state.apply(ev.TaskSetsChanged(ECS_GAUGED, T0 + 9, "web", "127.0.0.1:8201", None, shifted))
    stale = gauge_text(state.deployments[ECS_GAUGED], T0 + 9, 78).plain
    assert "40% prod  —   act" in stale and "actual over" not in stale


async def test_the_ecs_gauge_at_80x24_shows_set_and_actual() -> None:
    """An ECS deployment measured on production, opened at 80x24 -> the gauge's rows show set
    and actual production weight for both task sets."""
    path = build("gauge-ecs")
    document = yaml.safe_load(path.read_text())
    target = {"service": "web", "production_port": 8201, "test_port": 8202}
    document["applications"]["svc"] = {
        "compute_platform": "ECS",
        "deployment_groups": {"live": {"target": target}},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    engine = Engine(load_workspace(path).unwrap())
    try:
        raw_store(engine).append_many(_ecs_events(0.32))
    finally:
        engine.close()
    app = DeployDeckApp(load_workspace(path).unwrap(), clock=ManualClock(WALL_NOW))
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, ECS_GAUGED)(pilot)
        text = screen_rows(app)
        assert re.search(r"Blue  PRIMARY  web:1 3/3 run █+·+  70% prod  68% act", text), text
        assert re.search(r"Green ACTIVE   web:2 3/3 run █+▒+·+  30% prod  32% act", text), text
