"""A command imports only what it uses: what each quick command loads, seen from outside."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.command_line import REPO
from tests.engine.fleet import make_revision, write_workspace
from tui.cli import COMMANDS

# never wanted by a command that does not open the console, reach SSH or run an engine
CONSOLE = {"textual"}
SSH = {"asyncssh", "cryptography"}
ENGINE = {"engine.api", "engine.store", "engine.deployments", "engine.workspace.loader"}


def imported(folder: Path, *args: str) -> set[str]:
    """Every module `deploydeck ARGS` imported (its own -X importtime report), having run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tui.cli", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(folder / "data")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


def loaded(modules: set[str], unwanted: set[str]) -> set[str]:
    return {m for m in modules if any(m == u or m.startswith(f"{u}.") for u in unwanted)}


def test_help_imports_no_engine_and_no_rich(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--help")
    assert loaded(modules, CONSOLE | SSH | ENGINE | {"rich", "asyncio", "engine.appspec"}) == set()


def test_validate_imports_neither_console_ssh_nor_engine(tmp_path: Path) -> None:
    modules = imported(tmp_path, "validate", str(REPO / "sample_revisions" / "web-v1"))
    assert "engine.appspec" in modules  # it did check the revision
    assert loaded(modules, CONSOLE | SSH | ENGINE | {"engine.local"}) == set()


def test_local_imports_neither_console_ssh_nor_engine(tmp_path: Path) -> None:
    revision = tmp_path / "rev"
    (revision / "hooks").mkdir(parents=True)
    (revision / "appspec.yml").write_text(
        "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: hooks/start.sh\n"
    )
    (revision / "hooks" / "start.sh").write_text("#!/bin/sh\necho started\n")
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {tmp_path / 'root'}\n")
    modules = imported(tmp_path, "local", "-l", str(revision), "-c", str(config))
    assert "engine.local" in modules
    assert loaded(modules, CONSOLE | SSH | ENGINE) == set()


def test_a_fleet_of_local_instances_needs_no_ssh_nor_console(tmp_path: Path) -> None:
    write_workspace(tmp_path, 2)
    modules = imported(tmp_path, "list-deployments")
    assert "engine.api" in modules
    assert loaded(modules, CONSOLE | SSH) == set()


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_the_registry_names_each_modules_commands(module: str) -> None:
    commands = argparse.ArgumentParser().add_subparsers()
    defining = importlib.import_module(f"tui.commands.{module}")
    (getattr(defining, "add_parsers", None) or defining.add_parser)(commands)
    assert set(commands.choices) == {name for name, home in COMMANDS.items() if home == module}


HANDS_OVER = """\
import json, sys, time
from pathlib import Path
from engine.deployments.runner_slot import RunnerSlot
slot = RunnerSlot.fork()  # as create-deployment does, first thing
from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
engine = Engine(load_workspace(Path("deploydeck.yml")).unwrap(), runner_slot=slot)
created = engine.create_deployment_now(
    CreateDeploymentRequest(application="app", deployment_group="fleet", revision_path=sys.argv[1])
)
late = sorted(m for m in ("asyncio", "rich", "concurrent.futures") if m in sys.modules)
while not engine.get_deployment(created.id).terminal:
    time.sleep(0.05)
print(json.dumps({"late": late, "status": engine.get_deployment(created.id).status}))
"""


def test_create_deployment_hands_over_before_asyncio_or_rich(tmp_path: Path) -> None:
    """The runner has its deployment before the command imports asyncio or Rich, which it
    needs only to follow the deployment (tui/commands/follow.py)."""
    write_workspace(tmp_path, 2)
    revision = make_revision(tmp_path / "revisions", "v1")
    done = subprocess.run(
        [sys.executable, "-c", HANDS_OVER, str(revision)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"late": [], "status": "Succeeded"}
