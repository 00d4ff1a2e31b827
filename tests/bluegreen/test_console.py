"""The console's side of a blue/green deployment: the fleets and the wait's countdown on the
deployment screen, and the C key that continues it behind a confirmation."""

from __future__ import annotations

import os
import signal
from typing import Any

from textual.widgets import Button

from engine import events as ev
from engine.workspace import load_workspace
from tests.bluegreen.conftest import (
    BlueGreenFleet,
    deploy_to_ready,
    ready_wait,
    terminate_after,
    waiting_in,
    web_revision,
)
from tests.console.conftest import screen_ready, screen_text, wait_for
from tui.app import DeployDeckApp
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.new_deployment import NewDeploymentScreen
from tui.widgets.keyed_table import KeyedTable


def shown(app: DeployDeckApp) -> str:
    """The screen's text with runs of spaces as one (styled spans split the lines)."""
    return " ".join(screen_text(app).split())


async def test_the_ready_wait_is_shown_and_continued_from_the_console(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    waiting = await deploy_to_ready(fleet, 30)
    deployment = waiting.id
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: (
                screen_ready(app, DashboardScreen)
                and app.screen.query_one("#history", KeyedTable).selected_key == deployment
            ),
            what="the deployment selected",
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await wait_for(pilot, lambda: "READY_WAIT" in shown(app), what="the wait shown")
        text = shown(app)
        assert "traffic on blue" in text
        assert "left, then STOP_DEPLOYMENT" in text and "C moves traffic to green now" in text
        await pilot.press("C")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        body = " ".join(str(app.screen.query_one("#dialog-body").render()).split())
        assert "traffic moves from blue (b01, b02) to green" in body
        await pilot.press("enter")  # the focused answer is No: nothing happens
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await pilot.pause(0.5)
        assert fleet.e.get_deployment(deployment).status == "Ready"
        await pilot.press("C")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: fleet.e.get_deployment(deployment).status == "Succeeded",
            what="the deployment continued to its end",
            timeout=120,
        )
        await wait_for(pilot, lambda: "traffic on green" in shown(app), what="green shown")
        assert screen.check_action("continue_wait", ()) is False  # nothing to continue now


async def test_stop_and_rollback_questions_in_the_termination_wait_say_where_traffic_goes(
    bg_fleet: Any,
) -> None:
    """S and R in the termination wait: the stop leaves green serving and blue out of service
    but running; R adds that the rollback moves traffic back to blue. Both answered No."""
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green(
        {
            **terminate_after(30),
        }
    )
    deployment = await fleet.deploy("v2")
    await fleet.until(deployment, waiting_in("TERMINATION_WAIT"))
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        app.open_deployment(deployment)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await wait_for(pilot, lambda: "TERMINATION_WAIT" in shown(app), what="the wait shown")
        assert "minimum healthy 1" in shown(app)  # the serving fleet's (2 instances, OneAtATime)
        green = fleet.e.get_deployment(deployment).blue_green
        assert green is not None
        for key, then in (("S", ""), ("R", "The rollback then moves traffic back")):
            await pilot.press(key)
            await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
            body = " ".join(str(app.screen.query_one("#dialog-body").render()).split())
            assert f"the stop leaves traffic on green ({', '.join(green.green)})" in body, body
            assert "blue (b01, b02) stays out of service and running, not terminated" in body
            assert then in body
            assert "minimum healthy" not in body  # the in-place rule does not apply
            await pilot.press("n")
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
    assert fleet.e.get_deployment(deployment).status == "InProgress"
    await fleet.e.stop_deployment(deployment)
    await fleet.e.wait(deployment, timeout=300)


async def test_the_new_deployment_plan_and_question_are_blue_greens(bg_fleet: Any) -> None:
    """n on a blue/green group: the plan lists green's install, the ready wait, the traffic
    move and the termination wait (not in-place batches), and so does the question."""
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green(
        {
            **ready_wait(45),
            **terminate_after(20),
        }
    )
    web_revision(fleet.folder / "revisions", "v2")
    fleet.e.register_revision("app", fleet.folder / "revisions" / "v2", "directory", "v2")
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        app.action_new_deployment(("app", "fleet"))
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))

        def plan() -> str:
            return " ".join(str(app.screen.query_one("#plan-text").render()).split())

        await wait_for(pilot, lambda: "blue/green" in plan(), what="the blue/green plan")
        text = plan()
        assert "blue: the group's 2 instance(s) · green: a copy of each blue instance" in text
        assert "1. install the revision on every green instance at once" in text
        assert "2. wait in Ready up to 45 min until C" in text and "then STOP_DEPLOYMENT" in text
        assert "3. move traffic 1 instance(s) at a time" in text
        assert "4. wait 20 min (C ends it), then TERMINATE blue" in text
        assert "batch 1" not in text
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        body = " ".join(str(app.screen.query_one("#dialog-body").render()).split())
        assert "blue/green: a green fleet of 2 gets it, then traffic moves 1" in body, body
        await pilot.press("n")


async def test_a_blue_green_deployment_interrupted_in_ready_is_offered_and_resumed(
    bg_fleet: Any,
) -> None:
    """Its runner SIGKILLed in Ready: the console's recovery question says the wait goes on;
    r resumes it, and the screen shows the ready wait with its key again."""
    fleet: BlueGreenFleet = bg_fleet(run_mode="process")
    waiting = await deploy_to_ready(fleet, 30)
    (pid,) = [
        e.event.pid for e in fleet.e.journal(waiting.id) if isinstance(e.event, ev.EngineAttached)
    ]
    os.kill(pid, signal.SIGKILL)
    await fleet.until(waiting.id, lambda d: d.interrupted)
    app = DeployDeckApp(load_workspace(fleet.path).unwrap())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen), what="the offer")
        body = " ".join(str(app.screen.query_one("#dialog-body").render()).split())
        assert waiting.id in body, body
        assert "the READY_WAIT goes on to its deadline" in body, body
        labels = [str(b.label) for b in app.screen.query(Button)]
        assert any("Resume" in label for label in labels), labels
        await pilot.press("r")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await wait_for(
            pilot,
            lambda: not fleet.e.get_deployment(waiting.id).interrupted,
            what="a runner in charge again",
        )
        await wait_for(
            pilot,
            lambda: "READY_WAIT" in shown(app) and "C moves traffic to green now" in shown(app),
            what="the wait shown again",
        )
        assert fleet.e.get_deployment(waiting.id).status == "Ready"
    await fleet.e.stop_deployment(waiting.id)
    assert (await fleet.e.wait(waiting.id, timeout=300)).status == "Stopped"
