"""The demo's traffic shifts as a newcomer runs them, in a real terminal (tmux, 100x30), by
keystrokes only: the console sets the demo up on first run; a canary on the function `hello`
and a linear shift of the service `web` run side by side while the console's trickle calls
both; the canary is held (h) while the service is promoted (P, confirmed), then resumed (r);
a third deployment, faulty/beta, is stopped by its alarm and its traffic goes back at once;
`aws lambda invoke --endpoint-url` (the URL the dashboard shows) reaches the alias.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.functions import FunctionRegistry
from tests.conftest import require_tool
from tests.e2e.test_console_tmux import REPO, Terminal, header
from tui.demo import end_demo_processes

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo")]

WIDTH, HEIGHT = 100, 30
GROUPS = ("web/fleet", "web/canary", "web/shop", "web/shop-bg", "hello/live", "faulty/beta")


def pick_group(term: Terminal, current: str, wanted: str) -> None:
    """In the new-deployment form (focus on the revision): tab to the group list, open it,
    move from `current` to `wanted`, choose it."""
    order = [*GROUPS, "svc/live"]
    term.key("Tab")
    term.key("Enter")
    term.wait_for("web/shop-bg")  # the list is open (only it names that group)
    time.sleep(0.3)
    for _ in range(order.index(wanted) - order.index(current)):
        term.key("Down")
    term.key("Enter")
    term.wait_for(f"group       {wanted}")


def deploy(term: Terminal, shows: str) -> str:
    """ctrl+d, the question, y: the new deployment's screen; its id."""
    term.wait_for(shows, timeout=60)
    term.key("C-d")
    term.wait_for("Start this deployment?", "Deploy (y)")
    term.key("y")
    return term.wait_match(r"\A (d-[0-9A-Z]+)  ◌ InProgress", timeout=60)[1]


def back_to_dashboard(term: Terminal) -> None:
    """Escape, screen by screen (each deployment opened from another stacks on it), until the
    dashboard shows."""
    for _ in range(4):
        term.key("Escape")
        time.sleep(0.5)  # a key right after Escape would read as alt+key
        if "deployment history" in term.screen():
            return
    term.wait_for("deployment history")


def to_history_row(term: Terminal, index: int) -> None:
    """From a deployment screen: back to the dashboard, the history's `index`th row (0: the
    newest) under the cursor, opened."""
    back_to_dashboard(term)
    for _ in range(8):
        term.key("Up")
    for _ in range(index):
        term.key("Down")
    term.key("Enter")


def agreeing(screen: str, version: str, weight: int) -> bool:
    """The gauge's row of `version` at `weight` % set, its actual weight within 5 points,
    measured over at least 10 calls."""
    row = re.search(rf"^ v{version} .*?\s(\d+)% set\s+(\d+)% actual(.*)$", screen, re.M)
    if row is None or int(row[1]) != weight:
        return False
    calls = re.search(r"\((\d+) calls\)", screen)
    return abs(int(row[2]) - weight) <= 5 and calls is not None and int(calls[1]) >= 10


def test_the_demo_side_by_side_hold_promote_and_alarm_in_tmux(tmp_path: Path) -> None:
    require_tool("tmux")
    home = tmp_path / "home"
    demo = tmp_path / "demo"
    home.mkdir()
    term = Terminal(tmp_path)
    term.env.update(HOME=str(home), DEPLOYDECK_DEMO_HOME=str(demo))
    try:
        term.start(
            ["env", f"HOME={home}", f"DEPLOYDECK_DEMO_HOME={demo}", sys.executable, "-m",
             "tui.cli"],
            REPO,
            width=WIDTH,
            height=HEIGHT,
        )  # fmt: skip
        # First run: the demo is set up, then the dashboard.
        term.wait_for("deployment history", "hello/live", "svc/live", timeout=600)

        # A canary on the function: n, group hello/live, its revision and schedule, deploy.
        term.key("n")
        term.wait_for("New deployment", "✔ appspec valid")
        pick_group(term, "web/fleet", "hello/live")
        canary = deploy(term, " 10% on the target at once")
        term.wait_for("hello:live  step 1 of 2", "x20", timeout=60)
        # Requests flow: actual weight agrees with the set 10 %; then h holds the shift.
        deadline = time.monotonic() + 60
        while not agreeing(term.screen(), "2", 10):
            assert time.monotonic() < deadline, f"actual never agreed:\n{term.screen()}"
            time.sleep(0.2)
        term.key("h")
        term.wait_for("HELD: next shift", "r Resume")

        # A linear shift of the service, from the dashboard: n, group svc/live, deploy.
        back_to_dashboard(term)
        term.key("n")
        term.wait_for("New deployment", "✔ appspec valid")
        pick_group(term, "web/fleet", "svc/live")
        service = deploy(term, " 20% on the target after 1m00s (3.0s real)")
        term.wait_for("Blue  PRIMARY", "Green ACTIVE", "step 2 of 10", timeout=180)
        # P asks first, says what promoting does; y sends all traffic to green.
        term.key("P")
        term.wait_for(f"Promote {service} to 100%?", "Promote (y)")
        term.key("y")
        term.wait_for("✔ Succeeded", where=header, timeout=180)
        term.wait_for("100% prod")

        # Back to the held canary (the history's second row): still held; r resumes it.
        to_history_row(term, 1)
        term.wait_for(canary, where=header)
        term.wait_for("HELD: next shift")
        assert "◌ InProgress" in header(term.screen())
        term.key("r")
        term.wait_for("✔ Succeeded", where=header, timeout=120)
        term.wait_for("v2 ", "100% set")

        # The alarm: n from here, group faulty/beta (10 % to version 3, which fails).
        term.key("n")
        term.wait_for("New deployment", "✔ appspec valid")
        pick_group(term, "hello/live", "faulty/beta")
        stopped = deploy(term, " 10% on the target at once")
        term.wait_for("■ Stopped", where=header, timeout=120)
        term.wait_for("ALARM_ACTIVE", "errors ALARM", "v2 ", "100% set")
        assert re.search(r"^ v3 .*\s0% set", term.screen(), re.M), term.screen()

        # The dashboard says where the gateway listens; the AWS CLI reaches hello:live there.
        back_to_dashboard(term)
        term.key("BTab")
        term.key("BTab")  # the groups list
        for _ in range(GROUPS.index("hello/live")):
            term.key("Down")
        url = term.wait_match(r"function gateway (http://127\.0\.0\.1:\d+)")[1]
        out = tmp_path / "out.json"
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "aws"),
                "lambda",
                "invoke",
                "--no-sign-request",
                "--region",
                "us-east-1",
                "--endpoint-url",
                url,
                "--function-name",
                "hello:live",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=term.env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["ExecutedVersion"] == "2"
        assert json.loads(out.read_text())["greeting"] == "hello from version 2, world"

        # q: nothing runs, the console quits at once.
        term.key("q")
        deadline = time.monotonic() + 30
        while term.exit_status() is None:
            assert time.monotonic() < deadline, f"the console did not quit:\n{term.screen()}"
            time.sleep(0.1)
        assert term.exit_status() == "0", term.screen()
    finally:
        term.kill()
        end_demo_processes(demo)

    # On disk: beta is back on version 2 alone, live on version 2; the three as shown.
    registry = FunctionRegistry(demo / ".deploydeck")
    aliases = registry.get("hello").aliases
    assert aliases["beta"].weights() == {"2": 1.0}
    assert aliases["live"].weights() == {"2": 1.0}
    assert len({canary, service, stopped}) == 3
