"""The console for traffic-shifting groups: the new-deployment form deploys a Lambda group (its
revisions, configs and weight schedule, none of the Server-only options), and a time-scaled
deployment's screen shows every time on the run's own clock, marked with its scale."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from textual.widgets import Select

from engine.api import Engine
from engine.clock import ManualClock
from engine.workspace import load_workspace
from tests.console.conftest import SIZE, screen_ready, wait_for
from tests.console.test_gauges import GAUGED, WALL_NOW, make_app, screen_rows
from tests.engine.fleet import make_revision, write_workspace
from tui.app import DeployDeckApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen
from tui.screens.instance import InstanceScreen
from tui.screens.new_deployment import NewDeploymentScreen

LAMBDA_APPSPEC = (
    "version: 0.0\nResources:\n  - helloFunction:\n      Type: AWS::Lambda::Function\n"
    '      Properties:\n        Name: "hello"\n        Alias: "live"\n'
    '        CurrentVersion: "1"\n        TargetVersion: "2"\n'
)


def mixed_workspace(folder: Path) -> Path:
    """Application `app` (Server, group fleet of 2 local instances, web revision v1
    registered) and `fn` (Lambda, group live at x60, its alias revision registered)."""
    path = write_workspace(folder, 2)
    document = yaml.safe_load(path.read_text())
    document["applications"]["fn"] = {
        "compute_platform": "Lambda",
        "deployment_groups": {
            "live": {
                "deployment_config": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
                "target": {"time_scale": 60},
            }
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    shift = folder / "shift"
    shift.mkdir()
    (shift / "appspec.yaml").write_text(LAMBDA_APPSPEC)
    engine = Engine(load_workspace(path).unwrap())
    try:
        engine.register_revision("app", make_revision(folder / "revisions", "v1"), "directory")
        engine.register_revision("fn", shift, "directory", "hello 1 -> 2")
    finally:
        engine.close()
    return path


def options(select: Select) -> list[str]:
    return [str(value) for _, value in select._options]


async def test_n_on_a_lambda_group_offers_its_revisions_configs_and_schedule(
    tmp_path: Path,
) -> None:
    """The dashboard on a Lambda group, n -> the form opens on it (it used to end the console),
    with the group's revision, Lambda configs only, no Server-only options, and a plan that is
    the weight schedule at x60; another group brings that group's revisions and configs back;
    Deploy… asks about the shift."""
    path = mixed_workspace(tmp_path)
    app = DeployDeckApp(load_workspace(path).unwrap())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        dashboard.groups.focus()
        await pilot.press("down")  # app/fleet -> fn/live
        await wait_for(pilot, lambda: dashboard.selected_group == ("fn", "live"), what="fn/live")
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen), what="the form")
        form = app.screen
        assert isinstance(form, NewDeploymentScreen)
        await wait_for(pilot, lambda: form.preview is not None, what="the plan")
        assert form.query_one("#group", Select).value == "fn/live"
        configs = options(form.query_one("#config", Select))
        assert "CodeDeployDefault.LambdaCanary10Percent5Minutes" in configs
        assert not [c for c in configs if c.endswith(("AllAtOnce", "HalfAtATime"))] or all(
            "Lambda" in c for c in configs if c.endswith("AllAtOnce")
        )
        assert "CodeDeployDefault.OneAtATime" not in configs
        revisions = options(form.revision_choice)
        assert len(revisions) == 2  # fn's one revision, and "a path…"
        assert not any(row.display for row in form.query(".server-only"))
        await wait_for(pilot, lambda: "on the target" in screen_rows(app), what="the schedule")
        text = screen_rows(app)
        assert "No batches: the alias's calls move to the target by weight (time x60" in text
        assert " 10% on the target at once" in text
        assert "100% on the target after 5m00s (5.0s real)" in text

        # Deploy…: the question says what the shift does, and No leaves the form as it was.
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: screen_ready(app, ConfirmScreen), what="the question")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        said = " ".join(str(question.body).split())
        assert "to fn/live with CodeDeployDefault.LambdaCanary10Percent5Minutes" in said
        assert "traffic moves to the target in 2 step(s) (time x60" in said
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_ready(app, NewDeploymentScreen), what="the form")

        # Back to the Server group: its revision, its configs, its options and its batches.
        group = form.query_one("#group", Select)
        group.value = "app/fleet"
        await wait_for(pilot, lambda: "batch 1 (2): i01, i02" in screen_rows(app), what="batches")
        assert "CodeDeployDefault.OneAtATime" in options(form.query_one("#config", Select))
        assert all(row.display for row in form.query(".server-only"))
        assert len(options(form.revision_choice)) == 2  # app's v1, and "a path…"


async def test_a_time_scaled_runs_times_are_its_own_clock_marked_with_its_scale() -> None:
    """d-GAUGE0001 runs at x60: half a second of wall clock moves the header's elapsed time
    and the running AllowTraffic's time by half a minute, the header says x60, the countdown
    falls by as much; the instance screen shows the same; nothing shows a negative time."""
    app = make_app("gauge-clock")
    assert isinstance(app.clock, ManualClock) and app.clock.now() == WALL_NOW
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, DashboardScreen), what="the dashboard")
        app.open_deployment(GAUGED)
        await wait_for(pilot, lambda: screen_ready(app, DeploymentScreen), what="the screen")
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await wait_for(pilot, lambda: "◌ run 3m" in screen_rows(app), what="the table")
        before = screen_rows(app)
        assert "◌ InProgress 3m18s x60" in before
        assert "◌ run 3m14s" in before and "next shift in 42s" in before
        await app.clock.advance(0.5)  # half a second of wall clock: half a minute of the run's
        screen.refresh_view()
        await wait_for(pilot, lambda: "3m48s x60" in screen_rows(app), what="the next draw")
        after = screen_rows(app)
        assert "◌ run 3m44s" in after and "next shift in 12s" in after
        assert re.search(r"\s-\d", after) is None  # no negative time anywhere
        # The instance's own screen: the same clock, the same mark.
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_ready(app, InstanceScreen), what="the instance")
        await wait_for(pilot, lambda: "time x60" in screen_rows(app), what="its header")
        rows = screen_rows(app)
        assert re.search(r"AllowTraffic\s+◌ InProgress .*3m44s", rows), rows
        assert re.search(r"\s-\d", rows) is None
