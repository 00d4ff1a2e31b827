"""`python -m tui.screenshots DIR`, the README's screenshot command: the app saves its main
screens as SVG from real deployments, and leaves no workspace or server behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENS = (
    "dashboard",
    "new-deployment",
    "failed-deployment",
    "running-deployment",
    "stop-confirmation",
    "help",
)

pytestmark = pytest.mark.xdist_group("demo")  # its demo takes ports from 8101 up


def processes_naming(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.timeout(900)  # a hang guard above the tool's own 600 s, for a loaded machine
def test_screenshots_of_the_main_screens(tmp_path: Path) -> None:
    out, scratch = tmp_path / "shots", tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tui.screenshots", str(out)],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    saved = done.stdout.splitlines()[-len(SCREENS) :]  # after the demo's setup line
    assert saved == [str(out / f"{name}.svg") for name in SCREENS]
    for name in SCREENS:
        svg = (out / f"{name}.svg").read_text()
        assert svg.startswith("<svg") and "deploydeck" in svg
    assert "web-broken" in (out / "failed-deployment.svg").read_text().replace("&#160;", " ")
    assert list(scratch.iterdir()) == []  # the temporary demo is gone
    assert processes_naming(scratch) == []  # and so are its web servers
