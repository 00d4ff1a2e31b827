"""The deployment screen's traffic view: snapshots of a canned deployment behind a balancer
(tests/tui/canned.py's workspace and clock, plus d-TRAFFIC1 below), and Pilot checks of what
it says."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator

import pytest

from engine import events as ev
from engine.api import Engine
from engine.model import (
    SERVER_IN_PLACE_EVENTS,
    SERVER_IN_PLACE_TRAFFIC_EVENTS,
    DeploymentInfo,
    DeploymentOption,
    DeploymentStyle,
    TrafficHealth,
    TrafficState,
)
from engine.workspace import load_workspace
from tests.console.conftest import screen_ready, screen_text
from tests.raw_store import raw_store
from tests.tui.canned import APP, FLEET, GROUP, ROOT, T_RUNNING, build_workspace, frozen_clock
from tests.tui.conftest import steady_cursor, utc  # noqa: F401  (autouse: UTC, steady cursor)
from tests.tui.test_snapshots import SMALL, open_deployment, until
from tui.app import DeployDeckApp
from tui.render.stop_traffic import AfterStop, Position, after_stop
from tui.screens.confirm import ConfirmScreen
from tui.screens.deployment import DeploymentScreen
from tui.widgets.traffic_view import TrafficView

pytestmark = pytest.mark.xdist_group("snapshots")

TRAFFIC = "d-TRAFFIC1"
OK, UNKNOWN = TrafficHealth.OK, TrafficHealth.UNKNOWN
SERVING, DRAINING, OUT = TrafficState.IN_SERVICE, TrafficState.DRAINING, TrafficState.OUT_OF_SERVICE


def traffic_journal(engine: Engine, folder: str) -> list[ev.Event]:
    """d-TRAFFIC1, web-v2 with traffic control, batch 1 under way: web-1 installed and
    serving again, web-2 waiting for its health checks, web-3 out of service installing,
    web-4 draining its last 2 connections; web-5..8 serve web-v1. Two alarms, one
    observe-only and firing."""
    revisions = {r.revision.location.rsplit("/", 1)[1]: r.revision for r in engine.list_revisions()}
    v1, v2 = revisions["web-v1"], revisions["web-v2"]
    hosts = f"{folder}/.deploydeck/instances"
    t = T_RUNNING + 60
    d = TRAFFIC
    info = DeploymentInfo(
        d,
        APP,
        GROUP,
        "CodeDeployDefault.HalfAtATime",
        "Created",
        v2,
        previous_revision=v1,
        create_time=t,
        deployment_style=DeploymentStyle(deployment_option=DeploymentOption.WITH_TRAFFIC_CONTROL),
    )
    events: list[ev.Event] = [
        ev.DeploymentCreated(d, t, info),
        ev.InstancesTargeted(
            d,
            t + 0.01,
            FLEET,
            tuple(f"local:{hosts}/{n}" for n in FLEET),
            SERVER_IN_PLACE_TRAFFIC_EVENTS,
            4,
        ),
        ev.DeploymentStatusChanged(d, t + 0.02, "InProgress"),
        ev.EngineAttached(d, t + 0.02, os.getpid()),  # running: its engine is this process
    ]
    t += 0.03
    served = {name: 120 for name in FLEET}  # web-v1's requests before the blocks
    for name in FLEET:
        events.append(ev.InstanceTrafficChanged(d, t, name, SERVING, OK, 1, 120, "HTTP 200"))
    events.append(ev.BatchStarted(d, t, 1, FLEET[:4]))
    # how far each of batch 1 got: the last event started (the ones before it succeeded)
    reached = {
        "web-1": None,
        "web-2": "AllowTraffic",
        "web-3": "AfterInstall",
        "web-4": "BlockTraffic",
    }
    for name, until_event in reached.items():
        t += 1
        events.append(ev.InstanceStatusChanged(d, t, name, "InProgress"))
        for event in SERVER_IN_PLACE_TRAFFIC_EVENTS:
            t += 0.5
            events.append(ev.LifecycleEventStarted(d, t, name, event))
            if event == until_event:
                break
            events.append(ev.LifecycleEventFinished(d, t + 0.4, name, event, "Succeeded"))
        else:
            events.append(ev.InstanceStatusChanged(d, t + 0.5, name, "Succeeded"))
    for name, state, health, open_, extra in (
        ("web-1", OUT, UNKNOWN, 0, 0),
        ("web-2", OUT, UNKNOWN, 0, 0),
        ("web-3", OUT, UNKNOWN, 0, 0),
        ("web-1", SERVING, OK, 1, 85),  # after its install: web-v2's
        ("web-2", SERVING, UNKNOWN, 0, 0),
        ("web-4", DRAINING, OK, 2, 3),
        *((n, SERVING, OK, 1, 160) for n in FLEET[4:]),
    ):
        t += 0.1
        served[name] += extra
        events.append(
            ev.InstanceTrafficChanged(d, t, name, state, health, open_, served[name], "HTTP 200")
        )
    events.append(ev.AlarmEvaluated(d, t, "errors", "OK", 0.004, 0.05, "0.4% of 250 failed"))
    events.append(
        ev.AlarmEvaluated(
            d, t, "latency-p99", "ALARM", 812.0, 500.0, "p99 812 ms > 500", observe_only=True
        )
    )
    return sorted(events, key=lambda e: e.time)


@pytest.fixture
def traffic_app() -> Iterator[Callable[[str], DeployDeckApp]]:
    """The canned workspace /tmp/deploydeck-snapshots/<name> with d-TRAFFIC1 running."""

    def make(name: str) -> DeployDeckApp:
        path = build_workspace(name, running=False)
        workspace = load_workspace(path).unwrap()
        engine = Engine(workspace)
        try:
            raw_store(engine).append_many(traffic_journal(engine, str(path.parent)))
        finally:
            engine.close()
        app = DeployDeckApp(workspace, clock=frozen_clock())
        app.animation_level = "none"
        return app

    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield make


def test_traffic_view_at_80x24(snap_compare, traffic_app) -> None:
    """d-TRAFFIC1 at 80x24: capacity 5/8 with minimum 4 marked, web-v1 and web-v2 requests,
    each instance's state (serving, checking, out, draining 2 open), the alarm lights with the
    observe-only one marked; the batch table and the side panes keep their rows."""
    app = traffic_app("small-traffic")
    assert snap_compare(app, terminal_size=SMALL, run_before=open_deployment(TRAFFIC))


def test_traffic_view_wide(snap_compare, traffic_app) -> None:
    """d-TRAFFIC1 at 140x40: every instance on one or two rows."""
    app = traffic_app("wide-traffic")
    assert snap_compare(app, terminal_size=(140, 40), run_before=open_deployment(TRAFFIC))


async def test_traffic_view_says_what_the_balancer_does(traffic_app) -> None:
    app = traffic_app("pilot-traffic")
    async with app.run_test(size=SMALL) as pilot:
        await open_deployment(TRAFFIC)(pilot)
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        view = screen.query_one(TrafficView)
        await until(pilot, lambda: view.display, "the traffic view")
        text = " ".join(screen_text(app).split())
        assert "5/8 serving, minimum healthy 4" in text
        assert "web-v1 1603" in text and "web-v2 85" in text
        assert "web-4 draining 2 open" in text
        assert "web-2 checking" in text and "web-3 out" in text
        assert "latency-p99 ALARM 812/500 observe-only" in text
        assert "errors OK 0.004/0.05" in text


async def test_no_traffic_view_without_traffic_control(traffic_app) -> None:
    app = traffic_app("pilot-no-traffic")
    async with app.run_test(size=SMALL) as pilot:
        await open_deployment("d-SNAPSHOT1")(pilot)
        await pilot.pause()
        assert not app.screen.query_one(TrafficView).display
        assert screen_ready(app, DeploymentScreen)


def test_stop_question_says_what_stays_out_of_service(snap_compare, traffic_app) -> None:
    """S on d-TRAFFIC1 at 80x24: web-3 stays out (mid-install), web-4 goes back (only
    drained), web-2 takes traffic once healthy, 7 of 8 serve after the stop, minimum 4."""
    app = traffic_app("small-traffic-stop")
    run_before = open_deployment(TRAFFIC, "S", then=ConfirmScreen)
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


async def test_stop_and_rollback_questions_name_the_instances_out_of_service(
    traffic_app,
) -> None:
    app = traffic_app("pilot-traffic-stop")
    async with app.run_test(size=(140, 40)) as pilot:
        await open_deployment(TRAFFIC, "S", then=ConfirmScreen)(pilot)
        question = app.screen
        assert isinstance(question, ConfirmScreen) and question.describe is not None
        shown = " ".join(screen_text(app).split())
        assert "Traffic: 7 of 8" in shown  # on screen, not scrolled away
        _, body = question.describe()
        assert (
            "Traffic: 7 of 8 instances in service after the stop (minimum healthy 4: a stop "
            "never goes below it). web-3 stays out of service: its install is ended midway, so "
            "it serves again only once a deployment's AllowTraffic finds it healthy (the next "
            "deployment's). web-4 goes back in service once healthy: it was only drained. "
            "web-2 stays registered and serves once its health checks pass."
        ) in body
        await pilot.press("n")
        await until(pilot, lambda: screen_ready(app, DeploymentScreen), "back")
        await pilot.press("R")
        await until(pilot, lambda: screen_ready(app, ConfirmScreen), "the rollback question")
        question = app.screen
        assert isinstance(question, ConfirmScreen) and question.describe is not None
        title, body = question.describe()
        assert title == "Stop d-TRAFFIC1 and roll back?"
        assert "AllowTraffic finds it healthy (the rollback's, which follows)" in body


@pytest.mark.parametrize(
    "event, outcome",
    [
        (None, AfterStop.STAYS_IN),
        ("BeforeBlockTraffic", AfterStop.STAYS_IN),
        ("BlockTraffic", AfterStop.BACK_IN),
        ("AfterBlockTraffic", AfterStop.BACK_IN),
        *((e, AfterStop.STAYS_OUT) for e in SERVER_IN_PLACE_EVENTS),
        ("BeforeAllowTraffic", AfterStop.STAYS_OUT),
        ("AllowTraffic", AfterStop.BACK_IN),
        ("AfterAllowTraffic", AfterStop.BACK_IN),
    ],
)
def test_the_stop_rule_for_an_instance_stopped_during(event: str | None, outcome) -> None:
    """docs/traffic.md's table: where a running instance was -> what the stop leaves."""
    assert after_stop(Position("web-1", "InProgress", event, out_now=event is not None)) is outcome


def test_instances_not_running_keep_their_place_in_the_balancer() -> None:
    assert after_stop(Position("web-1", "Pending", None, out_now=False)) is AfterStop.STAYS_IN
    assert after_stop(Position("web-1", "Succeeded", None, out_now=False)) is AfterStop.STAYS_IN
    assert after_stop(Position("web-1", "Failed", None, out_now=True)) is AfterStop.STAYS_OUT
