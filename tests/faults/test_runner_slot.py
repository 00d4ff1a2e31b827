"""The runner slot: a child `create-deployment` forks before it imports the engine, which
becomes the deployment's runner (engine/deployments/runner_slot.py). Each case runs in a
process of its own, as the command does (a forked slot needs a process without threads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.command_line import DEPLOYDECK, REPO, create_deployment, environment
from tests.conftest import sigint_as_at_a_terminal
from tests.engine.fleet import make_revision, write_workspace

# argv: mode (run | killed | unused), workspace, revision; prints what happened as JSON
SLOT_SCRIPT = textwrap.dedent(
    """\
    import asyncio, json, os, signal, sys, time
    from pathlib import Path
    from engine.deployments.runner_slot import RunnerSlot

    mode, workspace_path, revision = sys.argv[1:4]
    slot = RunnerSlot.fork()
    assert slot is not None, "no slot forked"
    slot_pid = slot.pid
    if mode == "killed":  # gone before it is handed a deployment
        os.kill(slot_pid, signal.SIGKILL)
        while open(f"/proc/{slot_pid}/stat").read().split(")")[1].split()[0] != "Z":
            time.sleep(0.01)

    from engine import events as ev
    from engine.api import CreateDeploymentRequest, Engine
    from engine.workspace import load_workspace

    engine = Engine(load_workspace(Path(workspace_path)).unwrap(), runner_slot=slot)
    result = {"slot": slot_pid}
    if mode != "unused":
        async def deploy():
            deployment = await engine.create_deployment(
                CreateDeploymentRequest("app", "fleet", revision_path=Path(revision))
            )
            async for entry in engine.follow(deployment.id):
                if isinstance(entry.event, ev.EngineAttached):
                    result["runner"] = entry.event.pid
                if engine.get_deployment(deployment.id).terminal:
                    break
            result["status"] = str(engine.get_deployment(deployment.id).status)
        asyncio.run(deploy())
    engine.close()
    result["slot_alive"] = os.path.exists(f"/proc/{slot_pid}")
    print(json.dumps(result))
    """
)


def run_slot_script(tmp_path: Path, mode: str) -> dict:
    workspace = write_workspace(tmp_path, 2)
    revision = make_revision(tmp_path / "revisions", "v1")
    done = subprocess.run(
        [sys.executable, "-c", SLOT_SCRIPT, mode, str(workspace), str(revision)],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_a_slot_runs_the_deployment_it_is_handed(tmp_path: Path) -> None:
    """A deployment created by a process holding a runner slot -> the child it forked first
    runs it (the runner's pid is the slot's), and it succeeds."""
    result = run_slot_script(tmp_path, "run")
    assert result["status"] == "Succeeded"
    assert result["runner"] == result["slot"]
    assert (tmp_path / ".deploydeck/instances/i01/fs/srv/app/version.txt").read_text() == "v1\n"


def test_a_slot_that_died_before_its_deployment_leaves_the_runner_to_be_started_anew(
    tmp_path: Path,
) -> None:
    """The runner slot killed before it is handed a deployment -> the engine starts a runner
    its usual way; the deployment succeeds and the dead slot is reaped."""
    result = run_slot_script(tmp_path, "killed")
    assert result["status"] == "Succeeded"
    assert result["runner"] != result["slot"]
    assert result["slot_alive"] is False


def test_a_slot_no_deployment_takes_is_ended(tmp_path: Path) -> None:
    """An engine closed without starting a deployment -> its runner slot is ended and
    reaped."""
    result = run_slot_script(tmp_path, "unused")
    assert result["slot_alive"] is False


def started_in_its_own_group(
    workspace: Path, revision: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`create-deployment --wait` of `revision`, in a process group of its own, taking SIGINT
    as a command at a terminal does."""
    return subprocess.Popen(
        [*DEPLOYDECK, "-w", str(workspace), *create_deployment(revision, "--wait")],
        cwd=REPO,
        env=env or environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
    )


def assert_group_ends(pgid: int) -> None:
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(pgid)


def test_create_deployment_that_fails_its_checks_leaves_no_slot(tmp_path: Path) -> None:
    """`create-deployment --wait` of a revision with no appspec -> the error, exit 1, and the
    child it forked first is gone when it exits (nothing left running in its group)."""
    write_workspace(tmp_path, 2)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.html").write_text("no appspec here\n")
    command = started_in_its_own_group(tmp_path, broken)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 1
    assert "appspec" in out + err and "Traceback" not in out + err
    assert_group_ends(command.pid)


def test_a_slot_forked_on_a_guess_is_ended(tmp_path: Path) -> None:
    """A command line holding the word create-deployment that runs another command (here as
    an option's value) -> the slot forked before parsing is ended with it, nothing left."""
    workspace = write_workspace(tmp_path, 2)
    command = subprocess.Popen(
        [
            *DEPLOYDECK,
            "-w",
            str(workspace),
            "get-deployment",
            "--deployment-id",
            "create-deployment",
        ],
        cwd=REPO,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = command.communicate(timeout=120)
    assert command.returncode == 1 and "create-deployment" in out + err
    assert "Traceback" not in out + err
    assert_group_ends(command.pid)


def test_ctrl_c_while_create_deployment_starts_leaves_nothing_running(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the command's group) while the engine loads, its slot forked ->
    "interrupted", exit 130, the slot ended with it, and no deployment recorded."""
    workspace = write_workspace(tmp_path, 2)
    command = started_in_its_own_group(workspace, make_revision(tmp_path / "revisions", "v1"))
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    while not children.read_text().split():  # until its slot is forked: the engine loads
        time.sleep(0.001)
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=120)
    assert (command.returncode, err.strip()) == (130, "interrupted"), out + err
    assert_group_ends(command.pid)
    listed = subprocess.run(
        [*DEPLOYDECK, "-w", str(workspace), "list-deployments", "--output", "json"],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(listed.stdout)["deployments"] == []


# Makes both sides of every fork linger in Python's after-fork hooks, where a SIGINT taken
# would be raised in the hook and printed as a traceback, not handled.
SLOW_AFTER_FORK = """\
import os, time
os.register_at_fork(
    after_in_child=lambda: time.sleep(0.5), after_in_parent=lambda: time.sleep(0.5)
)
"""


def test_ctrl_c_while_the_slot_is_being_forked(tmp_path: Path) -> None:
    """Ctrl-C while both sides of the slot's fork are still in Python's after-fork hooks ->
    held back until the fork is done: the command says "interrupted" and exits 130, the
    child drops its SIGINT (no traceback from either), nothing is left running."""
    workspace = write_workspace(tmp_path, 2)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_AFTER_FORK)
    env = environment()
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    revision = make_revision(tmp_path / "revisions", "v1")
    command = started_in_its_own_group(workspace, revision, env)
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    while not children.read_text().split():  # forked: both sleep in their hooks
        time.sleep(0.001)
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=120)
    assert (command.returncode, err.strip()) == (130, "interrupted"), out + err
    assert_group_ends(command.pid)


def _group_alive(pgid: int) -> bool:
    """Whether any process (zombies aside) is still in process group `pgid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
