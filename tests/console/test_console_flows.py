"""Every console flow and key, with Pilot, against a real engine and local instances."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.api import Engine
from engine.workspace import load_workspace
from tests.console.conftest import (
    SIZE,
    deploy_directly,
    make_app,
    register,
    screen_ready,
    screen_text,
    start_watch,
    wait_for,
)
from tests.engine.fleet import live_pids, tree_digest
from tests.host.harness import pid_alive
from tests.raw_store import raw_store
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen, KeyedTable
from tui.screens.deployment import DeploymentScreen
from tui.screens.help import HelpScreen
from tui.screens.instance import InstanceScreen
from tui.screens.new_deployment import NewDeploymentScreen
from tui.widgets.batch_table import BatchTable
from tui.widgets.log_pane import LogPane
from tui.widgets.tick_box import TickBox


async def start_from_keyboard(pilot, app) -> DeploymentScreen:
    """n, then Deploy…, then y: the deployment screen of the new deployment."""
    await pilot.press("n")
    await wait_for(
        pilot, lambda: screen_ready(app, NewDeploymentScreen), what="new deployment screen"
    )
    await wait_for(pilot, lambda: app.screen.preview is not None, what="the plan")
    await pilot.click("#deploy")
    await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen), what="confirmation")
    await pilot.press("y")
    await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="deployment screen")
    return app.screen


def site(path: Path, instance: str) -> Path:
    return path.parent / ".deploydeck" / "instances" / instance / "fs" / "srv" / "app"


async def test_start_and_watch_to_success(fleet, revisions) -> None:
    path = fleet(4, config="CodeDeployDefault.HalfAtATime")
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(
            pilot, lambda: screen.view and screen.view.status == "Succeeded", what="success"
        )

        def drawn_succeeded() -> bool:
            tables = list(screen.query(BatchTable))
            return [t.batch_number for t in tables] == [1, 2] and all(
                str(t.get_row(name)[1]) == "✔ Succeeded" for t in tables for name in t._shown
            )

        await wait_for(pilot, drawn_succeeded, what="both batches drawn Succeeded")
        log = screen.query_one("#log", LogPane)
        assert any("ValidateService on" in line for line in log.lines)
        assert "Succeeded" in str(screen.query_one("#header").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        history = app.screen.query_one("#history", KeyedTable)
        await wait_for(
            pilot, lambda: history.row_count == 1 and "Succeeded" in str(history.get_row_at(0)[1])
        )
    assert (site(path, "i03") / "version.txt").read_text() == "v1\n"


async def test_a_failure_shows_its_evidence(fleet, revisions) -> None:
    path = fleet(2, env={"i02": {"FAIL_ON": "AfterInstall"}})
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: screen.view and screen.view.ended is not None)
        await wait_for(pilot, lambda: list(screen.query(BatchTable)), what="the batch table")
        table = screen.query_one(BatchTable)
        table.move_cursor(row=list(table._shown).index("i02"))
        await wait_for(
            pilot,
            lambda: "ScriptFailed" in str(screen.query_one("#evidence").render()),
            what="the evidence drawn",
        )
        evidence = str(screen.query_one("#evidence").render())
        assert "AfterInstall failed" in evidence and "ScriptFailed" in evidence
        assert "exit code   3" in evidence and "hooks/AfterInstall.sh" in evidence
        assert "failing on purpose" in evidence
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_ready(app, InstanceScreen))
        assert "ScriptFailed" in screen_text(app) and "hooks/AfterInstall.sh" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))


async def test_stop_asks_first_and_ends_the_hooks(fleet, revisions, tmp_path) -> None:
    path = fleet(
        4, config="CodeDeployDefault.HalfAtATime", env={"i01": {"HANG_ON": "BeforeInstall"}}
    )
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: live_pids(tmp_path / "pids.txt"), what="the hanging hook")
        await wait_for(
            pilot,
            lambda: getattr(screen.view.instances.get("i01"), "status", "") == "InProgress",
            what="i01 shown running",
        )
        await pilot.press("S")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        body = str(app.screen.query_one("#dialog-body").render())
        assert "i01" in body and "Skipped" in body and "SIGKILL" in body
        await pilot.press("enter")  # the focused answer is No
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await pilot.pause(0.5)
        assert screen.view.status == "InProgress"
        await pilot.press("S")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.view.status == "Stopped", what="Stopped")
        assert screen.check_action("stop", ()) is None  # shown disabled now
    assert live_pids(tmp_path / "pids.txt") == []


async def test_option_boxes_show_their_state_without_colour(fleet, revisions) -> None:
    path = fleet(2)
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))
        form = app.screen
        await wait_for(pilot, lambda: form.preview is not None, what="the plan")
        box = form.query_one("#outdated", TickBox)
        assert "✔" not in str(box.render()) and not form.request().update_outdated_instances_only
        await pilot.click("#outdated")
        await wait_for(pilot, lambda: box.value, what="the box ticked")
        assert "✔" in str(box.render()) and form.request().update_outdated_instances_only
        await pilot.click("#outdated")
        await wait_for(pilot, lambda: not box.value, what="the box cleared")
        assert "✔" not in str(box.render())


async def test_stop_and_roll_back(fleet, revisions, tmp_path) -> None:
    path = fleet(
        2, config="CodeDeployDefault.OneAtATime", env={"i02": {"HANG_ON": "AfterInstall@v2"}}
    )
    v1, v2 = revisions("v1"), revisions("v2")
    await deploy_directly(path, v1)
    before = {n: tree_digest(site(path, n)) for n in ("i01", "i02")}
    register(path, v2)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen))
        app.screen.query_one("#revision").value = next(
            r.revision.sha256 for r in app.engine.list_revisions() if r.revision.location == str(v2)
        )
        await wait_for(
            pilot,
            lambda: (
                app.screen.preview is not None and app.screen.preview.revision.location == str(v2)
            ),
        )
        await pilot.click("#deploy")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        await wait_for(pilot, lambda: live_pids(tmp_path / "pids.txt"), what="the hanging hook")
        await pilot.press("R")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        assert "roll back" in str(app.screen.query_one("#dialog-title").render()).lower()
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.view.rollback_id is not None, what="the rollback link")
        assert screen.view.status == "Stopped"
        rollback_id = screen.view.rollback_id
        await pilot.press("l")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, DeploymentScreen) and app.screen.deployment_id == rollback_id
            ),
        )
        rollback = app.screen
        await wait_for(
            pilot,
            lambda: rollback.view and rollback.view.status == "Succeeded",
            what="rollback success",
        )
        assert rollback.view.rolls_back == screen.deployment_id
    after = {n: tree_digest(site(path, n)) for n in ("i01", "i02")}
    assert after == before
    assert live_pids(tmp_path / "pids.txt") == []


async def test_quit_with_a_running_deployment(fleet, revisions, tmp_path) -> None:
    path = fleet(2, env={"i01": {"HANG_ON": "BeforeInstall"}})
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: live_pids(tmp_path / "pids.txt"))
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen))
        body = str(app.screen.query_one("#dialog-body").render())
        assert "own engine process" in body
        await pilot.press("c")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen))
        await pilot.press("l")  # leave it running
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    # it kept running without the console
    engine = Engine(load_workspace(path).unwrap())
    running = engine.list_deployments()[0]
    assert running.status == "InProgress" and live_pids(tmp_path / "pids.txt")
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen))
        await pilot.press("s")  # stop and quit
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    final = await engine.wait(running.id, timeout=60)
    engine.close()
    assert final.status == "Stopped"
    assert live_pids(tmp_path / "pids.txt") == []


async def test_filter_instances(fleet, revisions) -> None:
    path = fleet(
        4, env={"i02": {"FAIL_ON": "ValidateService"}, "i04": {"FAIL_ON": "ValidateService"}}
    )
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: screen.view and screen.view.ended is not None)

        def failures_drawn() -> bool:
            tables = list(screen.query(BatchTable))
            return bool(tables) and all(
                name in tables[0]._shown and "Failed" in str(tables[0].get_row(name)[1])
                for name in ("i02", "i04")
            )

        await wait_for(pilot, failures_drawn, what="the failures drawn")
        table = screen.query_one(BatchTable)
        await pilot.press("slash")
        assert screen.query_one("#filter", Input).has_focus
        for key in "failed":
            await pilot.press(key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: sorted(table._shown) == ["i02", "i04"], what="filtered")
        assert "2 hidden by filter" in str(table.border_title)
        await pilot.press("slash")
        screen.query_one("#filter", Input).value = "!i02 failed"
        await pilot.press("enter")
        await wait_for(pilot, lambda: sorted(table._shown) == ["i04"], what="filtered again")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table._shown) == 4, what="the filter cleared")
        assert sorted(table._shown) == ["i01", "i02", "i03", "i04"]
        assert isinstance(app.screen, DeploymentScreen)


async def test_replay_from_the_journal(fleet, revisions) -> None:
    path = fleet(3, config="CodeDeployDefault.OneAtATime")
    deployment_id = await deploy_directly(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: (
                screen_ready(app, DashboardScreen)
                and app.screen.query_one("#history", KeyedTable).selected_key == deployment_id
            ),
            what="the newest deployment selected",
        )
        await pilot.press("p")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        assert not screen.live
        # a replay acts on nothing: stop and roll back are not offered, and it says REPLAY
        # before the status it shows (the journal's, not what runs now)
        assert (
            screen.check_action("stop", ()) is False
            and screen.check_action("rollback", ()) is False
        )
        await wait_for(pilot, lambda: screen.view is not None, what="the replay's first event")
        await pilot.pause(0.2)
        footer = screen_text(app).splitlines()[-1]
        assert "Stop" not in footer and "Roll back" not in footer, footer
        assert str(screen.header_text.render()).splitlines()[0].lstrip().startswith("REPLAY")
        await pilot.press("S", "R")
        assert not isinstance(app.screen, ConfirmScreen)
        journal = app.engine.journal(deployment_id)
        first, last = journal[0].event.time, journal[-1].event.time
        # the replay's clock is the journal's: elapsed times are the original run's
        assert first <= screen.now() <= last
        await pilot.press("plus", "plus", "plus")
        assert screen.speed == 8
        await wait_for(
            pilot, lambda: screen.view and screen.view.status == "Succeeded", what="replayed end"
        )
        assert screen.view.batches == [("i01",), ("i02",), ("i03",)]
        assert "REPLAY" in str(screen.query_one("#header").render())
        assert screen.now() == pytest.approx(last)
        # p on a replay starts it over in its place: no stack of replays
        depth = len(app.screen_stack)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.screen is not screen, what="a new replay")
        assert isinstance(app.screen, DeploymentScreen) and not app.screen.live
        assert len(app.screen_stack) == depth
        # space pauses at once: the journal's clock stands still and nothing more is applied
        again = app.screen

        def shown() -> object:
            view = again.view
            return None if view is None else (view.status, repr(sorted(view.instances.items())))

        await pilot.press("space")
        held, before = again.now(), shown()
        await pilot.pause(1.0)
        assert again.paused and again.now() == held and shown() == before
        await pilot.press("space")
        await wait_for(
            pilot, lambda: again.view and again.view.status == "Succeeded", what="resumed end"
        )


async def test_help_and_command_palette(fleet) -> None:
    path = fleet(1)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: screen_ready(app, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
        await pilot.press("colon")
        await pilot.pause(0.3)
        for key in "new dep":
            await pilot.press(key if key != " " else "space")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: screen_ready(app, NewDeploymentScreen), what="palette command"
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))


async def test_recovery_is_offered_for_an_orphan(tmp_path) -> None:
    from tests.engine.test_recovery import start_and_kill

    engine, deployment_id, hung = await start_and_kill(tmp_path)
    await engine.aclose()
    app = make_app(tmp_path / "deploydeck.yml")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen), what="recovery offer")
        assert deployment_id in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("r")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        await wait_for(
            pilot, lambda: screen.view and screen.view.status == "Succeeded", what="resumed end"
        )
    assert not any(pid_alive(p) for p in hung)


async def test_a_runner_killed_while_watched_is_noticed_and_offered(tmp_path) -> None:
    """The console shows a deployment; its engine process is SIGKILLed: within seconds the
    screen says INTERRUPTED and recovery is offered; Stop ends it."""
    import asyncio
    import os
    import signal

    from engine.api import CreateDeploymentRequest
    from tests.engine.fleet import make_revision, write_workspace

    path = write_workspace(
        tmp_path, 2, config="CodeDeployDefault.OneAtATime", env={"i01": {"HANG_ON": "AfterInstall"}}
    )
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        created = await app.engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v1"))
        )
        app.open_deployment(created.id)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        await wait_for(pilot, lambda: len(live_pids(tmp_path / "pids.txt")) == 2, what="hang")
        runner = (
            raw_store(app.engine)
            .db.execute("SELECT engine_pid FROM deployments WHERE id=?", (created.id,))
            .fetchone()[0]
        )
        os.kill(runner, signal.SIGKILL)
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen), what="the offer")
        assert created.id in str(app.screen.query_one("#dialog-body").render())
        await wait_for(
            pilot,
            lambda: "INTERRUPTED" in str(screen.query_one("#header").render()),
            what="the screen saying so",
        )
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.view.status == "Stopped", what="Stopped")
        await asyncio.sleep(0)
    assert live_pids(tmp_path / "pids.txt") == []


async def test_watch_a_folder(fleet, revisions) -> None:
    path = fleet(1)
    revision = revisions("v1")
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await start_watch(pilot, app, revision)
        appspec = revision / "appspec.yml"
        appspec.write_text(appspec.read_text().replace("version: 0.0", "version: '0.0'"))
        await wait_for(pilot, lambda: "✖" in app.watch_status, what="invalid change noticed")
        assert "appspec.yml:1:" in app.watch_status
        appspec.write_text(appspec.read_text().replace("version: '0.0'", "version: 0.0"))
        await wait_for(pilot, lambda: "✔" in app.watch_status, what="valid again")


async def test_watch_deploys_each_valid_change(fleet, revisions) -> None:
    path = fleet(1)
    revision = revisions("v1")
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await start_watch(pilot, app, revision, "app/fleet")
        (revision / "site" / "version.txt").write_text("v1-edited\n")
        await wait_for(
            pilot, lambda: app.engine.list_deployments(), what="a deployment of the change"
        )
        deployment = app.engine.list_deployments()[0]
        final = await app.engine.wait(deployment.id, timeout=60)
        assert final.status == "Succeeded" and "watch" in final.description
        assert "→ app/fleet" in app.watch_status and f"deploying as {deployment.id}" in (
            app.watch_status
        )
        # w while watching: stop it; later changes are left alone
        await pilot.press("w")
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: app.watching is None and app.watch_status == "")
        (revision / "site" / "version.txt").write_text("v1-edited-again\n")
        await pilot.pause(1.5)
        assert len(app.engine.list_deployments()) == 1
    assert (site(path, "i01") / "version.txt").read_text() == "v1-edited\n"


async def test_keys_answer_promptly_during_a_200_instance_deployment(fleet, revisions) -> None:
    """The UI never blocks: while 200 instances deploy, each key is handled at once.

    A blocked UI would hold each key until the deployment ends, so each round trip must end
    while the store still has the deployment running (no clock limit: the machine may be
    loaded). The round trips are printed (`-s` shows them)."""
    path = fleet(
        200,
        config="CodeDeployDefault.AllAtOnce",
        env={f"i{n:02d}": {"HOOK_SLEEP": "3"} for n in range(1, 201)},
    )
    register(path, revisions("v1"))
    app = make_app(path)

    def stored_status() -> str:
        query = "SELECT status FROM deployments WHERE id=?"
        return raw_store(app.engine).db.execute(query, (screen.deployment_id,)).fetchone()[0]

    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)
        await wait_for(pilot, lambda: screen.view and screen.view.status == "InProgress")
        delays, running_after = [], []
        while len(delays) < 3 and stored_status() == "InProgress":
            started = time.monotonic()
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: screen_ready(app, HelpScreen), timeout=60)
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), timeout=60)
            delays.append(time.monotonic() - started)
            running_after.append(stored_status() == "InProgress")
        await wait_for(pilot, lambda: screen.view.status == "Succeeded", timeout=180)
    print(f"key round trips during the deployment: {[round(d, 3) for d in delays]}")
    assert running_after == [True, True, True], (running_after, delays)
