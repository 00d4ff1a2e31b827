"""A new user's walk through the demo's traffic control, in a real terminal (tmux), by keys
only: web-v2 to `shop` (behind the built-in balancer) HalfAtATime while the console's trickle
flows, with not one request failed and the traffic view moving; then web-v2 to `shop-bg`
blue/green: it waits in Ready, C continues it, and R in the termination wait sends traffic
back to blue with green blocked.

Failures are counted only while the deployment ran (the builtin balancer serves only then),
so the test holds whether or not the group's balancer outlives its deployments.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from engine.model import TrafficState
from engine.store import Store
from tests.conftest import require_tool
from tests.e2e.test_console_tmux import REPO, Terminal, header
from tui.demo import end_demo_processes

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 100, 30
SETUP_SECONDS = 600  # the first run sets up the whole demo (18 instances, a function, a service)


def new_deployment(term: Terminal, groups_down: int) -> None:
    """n, revision web-v2 (the second registered), the group `groups_down` below the first,
    ctrl+d, y: as a user picks them in the form."""
    term.key("n")
    term.wait_for("New deployment", "✔ appspec valid")
    term.key("Enter")  # the revision list
    term.wait_for("a folder or archive path…")
    term.key("Down")
    term.key("Enter")
    term.wait_for("web-v2  version 2")
    term.key("Tab")
    term.key("Enter")  # the group list
    term.wait_for("web/shop-bg")
    for _ in range(groups_down):
        term.key("Down")
    term.key("Enter")
    group = ("web/shop", "web/shop-bg")[groups_down - 2]
    term.wait_match(rf"group\s+{group}\s")
    term.key("C-d")
    term.wait_for("Start this deployment?", f"web-v2 to {group}:")
    term.key("y")
    term.wait_match(rf"\A d-[0-9A-Z]+  .* {group}  ")


def test_a_new_user_walks_the_demos_traffic_control_in_tmux(tmp_path: Path) -> None:
    require_tool("tmux")
    home = tmp_path / "home"
    home.mkdir()
    demo = tmp_path / "demo"
    term = Terminal(tmp_path)
    term.env.update({"HOME": str(home), "DEPLOYDECK_DEMO_HOME": str(demo), "PYTHONPATH": str(REPO)})
    term.env.pop("XDG_DATA_HOME", None)
    try:
        term.start([sys.executable, "-m", "tui.cli"], home, width=WIDTH, height=HEIGHT)
        term.wait_for("deployment history", "shop-bg", timeout=SETUP_SECONDS)
        term.wait_for("web/shop-bg")

        # In place behind the balancer: instances go out and back, the versions served move.
        new_deployment(term, 2)
        in_place = term.wait_match(r"\A (d-[0-9A-Z]+)  .* web/shop  ")[1]
        term.wait_for("○ shop-1 out", "● shop-3 serving", timeout=120)
        term.wait_for("● shop-1 serving", "○ shop-3 out", timeout=120)
        term.wait_for("✔ Succeeded", where=header, timeout=120)
        done = term.wait_match(r"trickle answered v1 (\d+) · v2 (\d+) · (\d+) failed")
        assert int(done[1]) > 0 and int(done[2]) > 0, done[0]
        assert done[3] == "0", term.screen()
        term.wait_match(r"served web-v1 \d+ · web-v2 \d+")
        term.wait_for("4/4 serving")

        # Blue/green: Ready, continued with C; rolled back from the termination wait with R.
        term.key("Escape")
        term.wait_for("deployment history")
        time.sleep(0.5)  # a letter right after Escape would read as alt+letter
        new_deployment(term, 3)
        blue_green = term.wait_match(r"\A (d-[0-9A-Z]+)  .* web/shop-bg  ")[1]
        term.wait_for("◷ Ready", where=header, timeout=120)
        term.wait_for("READY_WAIT", "C moves traffic to green now", "traffic on blue")
        term.key("C")
        term.wait_for("Move traffic to green now?", "Continue (y)")
        term.key("y")
        term.wait_for("TERMINATION_WAIT", "C ends blue now", timeout=120)
        term.wait_match(r"traffic on\s+green")
        term.key("R")
        term.wait_for(f"Stop {blue_green} and roll back?", "Roll back (y)")
        term.wait_match(r"the stop leaves traffic on\s+green")
        term.key("y")
        term.wait_for("■ Stopped", where=header, timeout=120)
        rollback = term.wait_match(r"rolled back by (d-[0-9A-Z]+) \(l to open\)", timeout=120)[1]
        term.key("l")
        term.wait_for(rollback, "✔ Succeeded", where=header, timeout=120)
        term.wait_match(r"traffic on\s+blue")

        term.key("q")
        deadline = time.monotonic() + 30
        while (status := term.exit_status()) is None:
            assert time.monotonic() < deadline, f"the console did not quit:\n{term.screen()}"
            time.sleep(0.1)
        assert status == "0", term.screen()
    finally:
        term.kill()
        end_demo_processes(demo)

    # On record: the in-place deployment succeeded with every instance back in service; the
    # blue/green one stopped, its rollback put traffic on blue and blocked green.
    store = Store(demo / ".deploydeck" / "state.db")
    try:
        shop = store.get_deployment(in_place)
        assert shop.status == "Succeeded"
        assert {t.state for t in shop.traffic} == {TrafficState.IN_SERVICE}
        stopped = store.get_deployment(blue_green)
        assert stopped.status == "Stopped"
        assert stopped.rollback.rollback_deployment_id == rollback
        back = store.get_deployment(rollback)
        assert back.status == "Succeeded"
        assert back.blue_green is not None and back.blue_green.traffic_on == "Blue"
        states = {t.instance: t.state for t in back.traffic}
        assert all(states[b] == TrafficState.IN_SERVICE for b in back.blue_green.blue), states
        assert all(states[g] == TrafficState.OUT_OF_SERVICE for g in back.blue_green.green)
    finally:
        store.close()
