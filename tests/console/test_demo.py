"""The built-in demo workspace `deploydeck` opens in a folder without deploydeck.yml: made on
first run with real deployments, reused afterwards, started over when its setup did not finish."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
from tests.console.conftest import SIZE, screen_ready, screen_text, wait_for
from tests.engine.fleet import write_workspace
from tui.app import DeployDeckApp
from tui.cli import build_parser, main
from tui.commands.console_cmd import choose_workspace
from tui.demo import (
    SAMPLES,
    DemoSetupError,
    Trickle,
    demo_trickle,
    end_demo_processes,
    ensure_demo_workspace,
)
from tui.screens.dashboard import DashboardScreen
from tui.screens.deployment import DeploymentScreen

# The demo takes twelve ports from 8101 up; demos made at once would race for them.
pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture
def demo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "demo"
    monkeypatch.setenv("DEPLOYDECK_DEMO_HOME", str(home))
    yield home
    end_demo_processes(home)


def serves(port: str) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/version.txt", timeout=5).read().decode()


def test_deploydeck_alone_opens_the_demo_made_on_first_run(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    args = build_parser().parse_args([])
    assert args.command is None  # `deploydeck` alone is the console
    path = choose_workspace(args)
    assert path == demo_home / "deploydeck.yml"
    assert sorted(p.name for p in demo_home.iterdir()) == [".deploydeck", "deploydeck.yml"]

    workspace = load_workspace(path).unwrap()
    assert len(workspace.instances) == 18
    assert [i.name for i in workspace.group_instances("web", "fleet")] == [
        f"web-{n}" for n in range(1, 9)
    ]
    assert len(workspace.group_instances("web", "canary")) == 4
    assert len(workspace.group_instances("web", "shop")) == 4  # behind the built-in balancer
    assert len(workspace.group_instances("web", "shop-bg")) == 2  # blue/green
    assert "QuarterAtATime" in workspace.configs
    engine = Engine(workspace)
    assert {r.revision.location.rsplit("/", 1)[-1] for r in engine.list_revisions()} == {
        "web-v1",
        "web-v2",
        "web-broken",
        "lambda-hello",
        "lambda-hello-faulty",
        "ecs-web",
        "ecs-web-v1",
    }
    setup = engine.list_deployments()
    assert sorted((d.deployment_group, d.status) for d in setup) == [
        ("canary", "Succeeded"),
        ("fleet", "Succeeded"),
        ("live", "Succeeded"),  # service web's first task set, web:1
        ("shop", "Succeeded"),
        ("shop-bg", "Succeeded"),  # continued past its waits: its copies serve v1
    ]
    for group in ("fleet", "canary", "shop"):
        for instance in workspace.group_instances("web", group):
            assert serves(instance.environment["WEB_PORT"].value).strip() == "v1"
    (blue_green,) = [d for d in setup if d.deployment_group == "shop-bg"]
    info = engine.get_deployment(blue_green.id).blue_green
    assert info is not None and info.traffic_on == "Green" and len(info.copied) == 2

    # The second start reuses it: nothing deployed again.
    assert ensure_demo_workspace(say=lambda _: None) == path
    assert len(Engine(load_workspace(path).unwrap()).list_deployments()) == 5

    async def open_console() -> None:
        app = DeployDeckApp(load_workspace(path).unwrap())
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
            await wait_for(pilot, lambda: app.screen.query_one("#history").row_count == 5)

    asyncio.run(open_console())


def test_an_unfinished_setup_is_started_over(demo_home: Path) -> None:
    """A setup interrupted after starting servers: they are ended and the demo made anew."""
    demo_home.mkdir()
    (demo_home / "deploydeck.setup.yml").write_text("interrupted: true\n")
    (demo_home / "leftover.txt").write_text("from the interrupted setup\n")
    server = subprocess.Popen(  # a web server a hook of the setup started
        [sys.executable, "-c", "import time; time.sleep(300)"],
        env={"DEPLOYDECK_FS_ROOT": str(demo_home / ".deploydeck" / "instances" / "web-1" / "fs")},
    )
    bystander = subprocess.Popen(  # names a sibling folder, and is none of the demo's
        [sys.executable, "-c", "import time; time.sleep(300)", f"{demo_home}-backup/notes.txt"]
    )
    try:
        said: list[str] = []
        path = ensure_demo_workspace(say=said.append)
        assert server.wait(timeout=10) is not None
        assert bystander.poll() is None
    finally:
        server.kill()
        bystander.kill()
    assert "did not finish last time" in said[0]
    assert path.exists() and not (demo_home / "leftover.txt").exists()
    assert not (demo_home / "deploydeck.setup.yml").exists()


def test_a_folder_that_is_not_a_demo_is_never_touched(demo_home: Path) -> None:
    demo_home.mkdir()
    mine = demo_home / "notes.txt"
    mine.write_text("mine\n")
    with pytest.raises(DemoSetupError, match="not empty and holds no demo workspace"):
        ensure_demo_workspace(say=lambda _: None)
    assert sorted(p.name for p in demo_home.iterdir()) == ["notes.txt"]


def test_the_cli_says_why_the_demo_cannot_be_made(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    demo_home.mkdir()
    (demo_home / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "ERROR:" in out and "DEPLOYDECK_DEMO_HOME" in out and "Traceback" not in out


HOLD_STATE = (
    "import os, sqlite3, time\n"
    "db = sqlite3.connect(os.environ['STATE'])\n"
    "db.execute('SELECT 1').fetchall()\n"
    "print('open', flush=True)\n"
    "time.sleep(60)\n"
)


def test_reset_demo_ends_its_servers_and_removes_it(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deploydeck reset-demo`: the web servers the demo's instances run and the host of its
    service (which answers from setup on) are ended, the folder is gone, and the next start makes the demo anew; a folder that is not a demo is refused."""
    path = ensure_demo_workspace(say=lambda _: None)
    ports = [
        i.environment["WEB_PORT"].value for i in load_workspace(path).unwrap().instances.values()
    ]
    assert serves(ports[0]).strip() == "v1"
    service = json.loads((demo_home / ".deploydeck/services/web/service.json").read_text())
    web = f"http://127.0.0.1:{service['listeners']['production']['port']}/"
    assert urllib.request.urlopen(web, timeout=30).headers["X-Revision"] == "1"  # set up, served
    console = subprocess.Popen(  # the state open, as `deploydeck -w DEMO` has it
        [sys.executable, "-c", HOLD_STATE, "-w", str(demo_home / "deploydeck.yml")],
        env={"STATE": str(demo_home / ".deploydeck" / "state.db")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout.readline() == "open\n"
        assert main(["reset-demo"]) == 1
        assert f"(pid {console.pid}) has the demo open" in capsys.readouterr().out
        assert serves(ports[0]).strip() == "v1"  # nothing ended, nothing removed
    finally:
        console.kill()
        console.wait()
    shop = load_workspace(path).unwrap().group("web", "shop").load_balancer
    assert shop is not None and shop.port is not None
    assert serves(str(shop.port)).strip() == "v1"  # the balancer host, since the setup
    assert main(["reset-demo"]) == 0
    assert not demo_home.exists()
    for port in [*ports, shop.port]:
        with pytest.raises(OSError):
            serves(port)
    with pytest.raises(OSError):
        urllib.request.urlopen(web, timeout=30)  # the service's host ended with its tasks
    assert "removed" in capsys.readouterr().out
    assert main(["reset-demo"]) == 0
    assert "nothing to reset" in capsys.readouterr().out

    demo_home.mkdir()
    (demo_home / "deploydeck.yml").write_text("applications: {}\n")
    assert main(["reset-demo"]) == 1
    assert "holds no demo workspace" in capsys.readouterr().out
    assert (demo_home / "deploydeck.yml").read_text() == "applications: {}\n"


def test_the_consoles_trickle_reaches_the_balancer_and_stops_on_exit(demo_home: Path) -> None:
    """While the console is open on the demo, its trickle goes through `shop`'s balancer: a
    HalfAtATime web-v2 deployment moves the answers from v1 to v2 and the traffic view shows
    the requests each revision served; leaving ends the trickle, nothing left running."""
    path = ensure_demo_workspace(say=lambda _: None)
    workspace = load_workspace(path).unwrap()

    async def deploy_while_open(trickle: Trickle) -> str:
        app = DeployDeckApp(workspace)
        app.trickle = trickle  # as `deploydeck` does for the demo
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: screen_ready(app, DashboardScreen))
            engine = Engine(workspace, run_mode="process")
            try:
                created = await engine.create_deployment(
                    CreateDeploymentRequest("web", "shop", revision_path=SAMPLES / "web-v2")
                )
            finally:
                await engine.aclose()
            app.open_deployment(created.id)
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, DeploymentScreen)
                    and app.screen.view is not None
                    and app.screen.view.ended is not None
                ),
                timeout=300,
                what="the deployment to end",
            )
            await pilot.pause(0.5)
            shown = " ".join(screen_text(app).split())
            assert "capacity" in shown and "4/4 serving" in shown
            assert re.search(r"served web-v1 \d+ · web-v2 \d+", shown), shown
            # the trickle's own answers while the deployment ran: both versions, none failed
            answered = re.search(r"trickle answered v1 (\d+) · v2 (\d+) · (\d+) failed", shown)
            assert answered is not None, shown
            assert int(answered[1]) > 0 and int(answered[2]) > 0 and answered[3] == "0", shown
            return created.id

    with demo_trickle(workspace) as trickle:
        assert trickle is not None and trickle.running
        deployment_id = asyncio.run(deploy_while_open(trickle))
        assert trickle.served.get("v1", 0) > 0 and trickle.served.get("v2", 0) > 0
        after = trickle.served["v2"] + 8
        while trickle.served["v2"] < after:  # the balancer serves with no deployment running
            time.sleep(0.05)
    counts = trickle.counts()  # from the setup on, the balancer never stopped serving
    assert (counts.refused, counts.failed) == (0, 0)
    assert not trickle.running
    assert "demo-trickle" not in {t.name for t in threading.enumerate()}  # none left behind
    final = Engine(workspace).get_deployment(deployment_id)
    assert final.status == "Succeeded"
    assert sum(t.requests_served or 0 for t in final.traffic) > 0  # the balancer served them


def test_no_trickle_for_a_workspace_that_is_not_the_demo(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 2)
    with demo_trickle(load_workspace(path).unwrap()) as trickle:
        assert trickle is None
