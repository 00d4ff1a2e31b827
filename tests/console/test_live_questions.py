"""Questions say what answering does at the moment of answering: the stop dialog follows the
deployment while open, quitting says what a stop sets off, a watch never redeploys what the
group already runs."""

from __future__ import annotations

from pathlib import Path

from tests.console.conftest import (
    SIZE,
    deploy_directly,
    make_app,
    register,
    screen_ready,
    start_watch,
    wait_for,
)
from tests.console.test_console_flows import start_from_keyboard
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.deployment import DeploymentScreen


def body(app) -> str:
    return str(app.screen.query_one("#dialog-body").render())


def running_part(text: str) -> str:
    """The stop dialog's list of instances whose hooks it ends."""
    return text.split("are ended")[0]


async def test_the_stop_dialog_follows_the_deployment_while_open(
    fleet, revisions, tmp_path: Path
) -> None:
    """S while i01 runs; i01 finishes and i02 starts (and hangs) while the dialog is open: the
    dialog now names i02, and y stops i02 (i01 keeps its success)."""
    gate = tmp_path / "i01-may-go"
    path = fleet(
        3,
        config="CodeDeployDefault.OneAtATime",
        env={"i01": {"WAIT_FOR_FILE": str(gate)}, "i02": {"HANG_ON": "BeforeInstall"}},
    )
    register(path, revisions("v1"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_from_keyboard(pilot, app)

        def status(name: str) -> str:
            view = screen.view
            return view.instances[name].status if view and name in view.instances else ""

        await wait_for(pilot, lambda: status("i01") == "InProgress", what="i01 running")
        await pilot.press("S")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen), what="the question")
        assert "(i01)" in running_part(body(app))
        gate.touch()  # i01 finishes and i02 starts while the question is open
        await wait_for(pilot, lambda: status("i02") == "InProgress", what="i02 running")
        await wait_for(
            pilot, lambda: "(i02)" in running_part(body(app)), what="the dialog naming i02"
        )
        assert "i01" not in running_part(body(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.view.status == "Stopped", what="Stopped")
        assert [status(n) for n in ("i01", "i02", "i03")] == ["Succeeded", "Failed", "Skipped"]


async def test_quit_says_the_stop_sets_off_the_groups_rollback(fleet, revisions) -> None:
    path = fleet(
        2,
        auto_rollback=("DEPLOYMENT_STOP_ON_REQUEST",),
        env={"i02": {"HANG_ON": "BeforeInstall@v2"}},
    )
    await deploy_directly(path, revisions("v1"))
    register(path, revisions("v2"))
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, type(app.screen)) and app.screen.preview)
        v2 = next(r for r in app.engine.list_revisions() if r.revision.location.endswith("v2"))
        app.screen.query_one("#revision").value = v2.revision.sha256
        await wait_for(pilot, lambda: app.screen.preview.revision == v2.revision, what="v2 plan")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen))
        screen = app.screen
        await wait_for(
            pilot,
            lambda: (
                screen.view is not None
                and "i02" in screen.view.instances
                and screen.view.instances["i02"].status == "InProgress"
            ),
            what="i02 hanging",
        )
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_ready(app, ChoiceScreen))
        text = " ".join(body(app).split())
        assert "auto-rollback on stop then redeploys revision" in text, text
        assert "2 instance(s)" in text and "after the console has closed" in text
        await pilot.press("c")
        await pilot.press("S")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.view.rollback_id is not None, what="the rollback")


async def test_a_watch_does_not_redeploy_what_the_group_runs(fleet, revisions) -> None:
    """Deployed once; the appspec broken then restored: the content is what the group already
    runs, so no second deployment; the status says so, and that the watch ends with the
    console."""
    path = fleet(1)
    revision = revisions("v1")
    app = make_app(path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:

        def says_it_ends_with_the_console(screen) -> None:
            assert "not restored" in " ".join(str(w.render()) for w in screen.query("Static"))

        await start_watch(pilot, app, revision, "app/fleet", seen=says_it_ends_with_the_console)
        assert "until the console closes" in app.watch_status
        (revision / "site" / "version.txt").write_text("v1-edited\n")
        await wait_for(pilot, lambda: app.engine.list_deployments(), what="the first deployment")
        first = app.engine.list_deployments()[0]
        assert (await app.engine.wait(first.id, timeout=60)).status == "Succeeded"
        appspec = revision / "appspec.yml"
        good = appspec.read_text()
        appspec.write_text(good.replace("version: 0.0", "version: '0.0'"))
        await wait_for(pilot, lambda: "✖" in app.watch_status, what="the broken appspec")
        appspec.write_text(good)
        await wait_for(
            pilot, lambda: "already runs it" in app.watch_status, what="restored, not redeployed"
        )
        await pilot.pause(1.0)
        assert [d.id for d in app.engine.list_deployments()] == [first.id]


async def test_a_yes_given_as_the_text_changes_shows_it_and_asks_again() -> None:
    """The state moved after the dialog last drew: y draws the new text and waits for
    another y, so the answer always confirms the text on screen."""
    from textual.app import App

    now = {"running": "web-1"}
    answers: list[bool | None] = []

    def describe() -> tuple[str, str]:
        return "Stop d-1?", f"The hooks now running on {now['running']} are ended."

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ConfirmScreen("", "", "Stop", describe=describe), answers.append)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen), what="the question")
        assert "web-1" in body(app)
        now["running"] = "web-2"  # an event the dialog has not drawn yet
        await pilot.press("y")
        assert answers == [] and isinstance(app.screen, ConfirmScreen)
        assert "web-2" in body(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: answers == [True], what="the confirmed answer")
