"""A runner starts its local hooks through its hook launcher process: what that changes, and
what happens when the launcher dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.command_line import dd_started, environment, group_args
from tests.engine.fleet import write_workspace
from tests.faults.test_file_workers import wait_for
from tests.host.harness import pid_alive, write_tree

# Records its pid and its parent's name, then waits for the gate file, if one is set.
HOOK = """\
#!/bin/sh
echo "$$" > "$OUT/$INSTANCE_NAME.hook.pid"
cat /proc/$PPID/comm > "$OUT/$INSTANCE_NAME.parent.comm"
echo "$PPID" > "$OUT/$INSTANCE_NAME.parent.pid"
while [ -n "${GATE:-}" ] && [ ! -e "$GATE" ]; do sleep 0.05; done
echo "$LIFECYCLE_EVENT done"
"""


def revision(tmp_path: Path) -> Path:
    appspec = "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: hook.sh\n"
    return write_tree(tmp_path / "rev", {"appspec.yml": appspec, "hook.sh": HOOK})


def deploy(tmp_path: Path, workspace: Path, env: dict[str, str] | None = None):
    return dd_started(
        tmp_path,
        "-w",
        str(workspace),
        "create-deployment",
        *group_args(),
        "--revision",
        str(revision(tmp_path)),
        "--wait",
        env=environment(**(env or {})),
    )


def out(workspace: Path, name: str, what: str) -> Path:
    """What instance `name`'s hook wrote about itself."""
    return workspace / f"{name}.{what}"


def test_local_hooks_are_started_by_the_launcher(tmp_path: Path) -> None:
    """A deployment to local instances -> each hook is a child of the runner's hook launcher
    (forked from the runner, not its event loop's), succeeds as before, and the launcher ends
    with the run."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(workspace, 3, env={n: {"OUT": str(workspace)} for n in ("i01", "i02", "i03")})
    proc = deploy(tmp_path, workspace)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    parents = set()
    for name in ("i01", "i02", "i03"):
        assert out(workspace, name, "parent.comm").read_text().strip() == "dd-launcher"
        parents.add(int(out(workspace, name, "parent.pid").read_text()))
    assert len(parents) == 1  # one launcher for the run
    (launcher,) = parents
    wait_for(lambda: not pid_alive(launcher), "the launcher to end with the run")


def test_launcher_killed_while_a_hook_runs(tmp_path: Path) -> None:
    """The hook launcher is SIGKILLed while a hook runs -> the hook runs to its end, then its
    event fails saying its exit status was lost with the launcher; nothing is left running."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    gate = tmp_path / "gate"
    write_workspace(workspace, 1, env={"i01": {"GATE": str(gate), "OUT": str(workspace)}})
    proc = deploy(tmp_path, workspace)
    parent = out(workspace, "i01", "parent.pid")
    wait_for(lambda: parent.exists() and parent.read_text().strip(), "the hook to start")
    hook = int(out(workspace, "i01", "hook.pid").read_text())
    launcher = int(parent.read_text())
    os.kill(launcher, signal.SIGKILL)
    assert pid_alive(hook)  # the scripts live in sessions of their own
    gate.touch()
    stdout, stderr = proc.communicate()
    assert proc.returncode != 0, stdout + stderr
    assert "exit status was lost" in stdout, stdout
    assert "Traceback" not in stdout + stderr
    assert not pid_alive(hook)


# Leaves a daemon in a session of its own, its parent gone: it writes its pid once in that
# session, and the hook ends only then.
DAEMON_HOOK = """\
#!/bin/sh
pid="$OUT/$INSTANCE_NAME.daemon.pid"
sh -c 'setsid sh -c "echo \\$\\$ > $0; exec sleep 60" >/dev/null 2>&1 &' "$pid"
while [ ! -s "$pid" ]; do sleep 0.01; done
echo "$LIFECYCLE_EVENT done"
"""


def test_a_daemon_left_by_a_hook_is_still_found(tmp_path: Path) -> None:
    """A hook leaves a daemon in a session of its own whose parent has exited -> the launcher
    adopts it as their subreaper, so the scan is not skipped: the hook's log names it as still
    running; the hooks after it, which leave nothing, are not blamed for it."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(workspace, 1, env={"i01": {"OUT": str(workspace)}})
    appspec = (
        "version: 0.0\nos: linux\nhooks:\n"
        "  BeforeInstall:\n    - location: daemon.sh\n"
        "  AfterInstall:\n    - location: hook.sh\n"
    )
    rev = write_tree(
        tmp_path / "rev", {"appspec.yml": appspec, "daemon.sh": DAEMON_HOOK, "hook.sh": HOOK}
    )
    proc = dd_started(
        tmp_path,
        "-w",
        str(workspace),
        "create-deployment",
        *group_args(),
        "--revision",
        str(rev),
        "--wait",
        env=environment(),
    )
    stdout, stderr = proc.communicate()
    daemon = int(out(workspace, "i01", "daemon.pid").read_text())
    try:
        assert proc.returncode == 0, stdout + stderr
        (log,) = (workspace / ".deploydeck" / "instances" / "i01").rglob("logs/scripts.log")
        text = log.read_text()
        noted = [line for line in text.splitlines() if "still running" in line]
        assert len(noted) == 1 and str(daemon) in noted[0], text
        assert text.index("still running") < text.index("AfterInstall done"), text
    finally:
        if pid_alive(daemon):
            os.kill(daemon, signal.SIGKILL)
