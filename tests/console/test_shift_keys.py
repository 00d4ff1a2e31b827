"""Keys for a running traffic shift on a real Lambda deployment at real time (a minute between
steps): h holds, r resumes, > skips the wait, P promotes after asking; each is offered in the
footer only while it applies, and each reaches the run as a journaled request."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from engine.api import CreateDeploymentRequest
from engine.workspace import load_workspace
from tests.console.conftest import screen_ready, wait_for
from tests.console.test_gauges import screen_rows
from tests.functions.test_lambda_deployments import Workspace
from tui.app import DeployDeckApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.deployment import DeploymentScreen


def footer(app: DeployDeckApp) -> str:
    """The keys the footer offers now ("h Hold  r Resume ..."), from the screen's bindings."""
    shown = [
        f"{active.binding.key_display or active.binding.key} {active.binding.description}"
        for active in app.screen.active_bindings.values()
        if active.enabled and active.binding.show
    ]
    return "  ".join(shown)


def operator_actions(app: DeployDeckApp, deployment_id: str) -> list[str]:
    """The operator actions the run applied, from its journal."""
    return [
        e.event.action
        for e in app.engine.journal(deployment_id)
        if isinstance(e.event, ev.ShiftProgressed) and e.event.action
    ]


async def test_hold_resume_skip_and_promote_from_the_keyboard(tmp_path: Path) -> None:
    """h -> HELD, only r and P offered; r -> shifting again; > -> step 2 at once (not a minute
    later); P, y -> 100% on version 2, the deployment succeeds; the keys leave the footer."""
    workspace = Workspace(tmp_path)
    revision = workspace.revision("v2", 1, 2)
    app = DeployDeckApp(load_workspace(tmp_path / "deploydeck.yml").unwrap())
    async with app.run_test(size=(120, 40)) as pilot:
        created = await app.engine.create_deployment(
            CreateDeploymentRequest(
                "fn",
                "live",
                revision_path=revision,
                config_name="CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
            )
        )
        app.open_deployment(created.id)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the screen")
        await wait_for(
            pilot, lambda: "step 1 of 10 · next shift in" in screen_rows(app), what="step 1"
        )
        assert "h Hold" in footer(app) and "> Skip wait" in footer(app)
        assert "r Resume" not in footer(app)

        await pilot.press("h")
        await wait_for(pilot, lambda: "HELD" in screen_rows(app), what="held")
        await wait_for(pilot, lambda: "r Resume" in footer(app), what="resume offered")
        assert "h Hold" not in footer(app) and "> Skip wait" not in footer(app)
        assert "P Promote" in footer(app)

        await pilot.press("r")
        await wait_for(pilot, lambda: "HELD" not in screen_rows(app), what="resumed")
        await wait_for(pilot, lambda: "h Hold" in footer(app), what="hold offered again")

        await pilot.press("greater_than_sign")
        await wait_for(pilot, lambda: "step 2 of 10" in screen_rows(app), what="step 2")
        assert operator_actions(app, created.id) == ["hold", "resume", "skip"]

        await pilot.press("P")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen), what="the question")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        assert "goes to version 2 at once" in screen_rows(app)
        await pilot.press("y")
        final = await app.engine.wait(created.id, timeout=120)
        assert final.status == "Succeeded"
        assert operator_actions(app, created.id) == ["hold", "resume", "skip", "promote"]
        await wait_for(pilot, lambda: "P Promote" not in footer(app), what="keys gone")
        assert "h Hold" not in footer(app)
    assert workspace.weight() == ("2", 1.0)
