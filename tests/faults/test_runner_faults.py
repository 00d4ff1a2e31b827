"""Faults around the deployment runner: its process dies, its database is locked or corrupt,
two deployments race for one revision. Each test names the fault and what deploydeck promises."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.command_line import REPO, dd_started, environment, group_args
from tests.engine.fleet import live_pids, make_revision, write_workspace
from tests.host.harness import pid_alive, write_tree

KEEP_SNAPSHOT = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from engine.deployments.revisions import RevisionSnapshots, check_revision
    state, revision, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    checked = check_revision(revision)
    while not go.exists():
        time.sleep(0.001)
    print(RevisionSnapshots(state).keep(checked))
    """
)


def test_two_deployments_snapshot_one_new_revision_at_once(tmp_path: Path) -> None:
    """Two processes first using the same new revision at once -> both get the same complete
    snapshot, no traceback."""
    state = tmp_path / ".deploydeck"
    for round_ in range(4):
        files = {f"f{n:03d}.txt": f"{round_} {n}\n" * 200 for n in range(300)}
        revision = make_revision(tmp_path / f"round{round_}", "v1", files)
        go = tmp_path / f"go{round_}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", KEEP_SNAPSHOT, str(state), str(revision), str(go)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        go.touch()
        outputs = [racer.communicate() for racer in racers]
        assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
        paths = {out.strip() for out, _ in outputs}
        assert len(paths) == 1
        snapshot = Path(paths.pop())
        copied = sorted(p.name for p in (snapshot / "site").iterdir())
        assert copied == sorted(files)
    assert [p.name for p in state.joinpath("revisions").iterdir() if "partial" in p.name] == []


def dd(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`deploydeck ARGS` started in `cwd`, its output captured; `env` adds variables."""
    return dd_started(cwd, *args, env=environment(**(env or {})))


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = dd(cwd, *args, env=env)
    out, err = proc.communicate()
    return proc.returncode, out, err


def hanging_fleet(tmp_path: Path, count: int = 2) -> tuple[Path, Path]:
    """A workspace whose i01 hangs in AfterInstall (pids in pids.txt), and a revision."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(
        workspace,
        count,
        config="CodeDeployDefault.OneAtATime",
        env={"i01": {"HANG_ON": "AfterInstall"}},
    )
    return workspace, make_revision(tmp_path, "v1")


def wait_for(predicate, what: str) -> None:
    while not predicate():
        time.sleep(0.05)


def runner_pid(workspace: Path) -> tuple[str, int]:
    """The one deployment of the workspace and its runner's pid, once it has one."""
    db = workspace / ".deploydeck" / "state.db"
    while True:
        if db.exists():
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                try:
                    row = conn.execute("SELECT id, engine_pid FROM deployments").fetchone()
                except sqlite3.OperationalError:  # its tables are still being made
                    row = None
            if row and row[1]:
                return row[0], row[1]
        time.sleep(0.05)


def target(revision: Path) -> list[str]:
    return [*group_args(), "--revision", str(revision)]


OPEN_STORE = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from engine.store import Store
    path, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        pass
    Store(path).close()
    """
)


def test_processes_opening_one_new_state_database_at_once(tmp_path: Path) -> None:
    """Three processes opening the same new state.db at the same moment (two commands in a new
    workspace) -> all three open it; SQLite's switch to WAL answers BUSY without waiting, so
    the store tries the switch again instead of calling the database locked."""
    for round_ in range(10):
        path = tmp_path / f"ws{round_}" / "state.db"
        go = tmp_path / f"go{round_}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_STORE, str(path), str(go)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        time.sleep(0.3)  # each is spinning on `go` by now
        go.touch()
        outputs = [racer.communicate(timeout=60) for racer in racers]
        assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
        journal_mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert journal_mode == "wal"


def test_runner_killed_while_create_deployment_waits(tmp_path: Path) -> None:
    """The runner is SIGKILLed while `create-deployment --wait` follows it -> --wait exits 1
    with the resume/stop/rollback commands (with the -w given), no hang, no traceback."""
    workspace, revision = hanging_fleet(tmp_path)
    waiting = dd(tmp_path, "-w", str(workspace), "create-deployment", *target(revision), "--wait")
    wait_for(lambda: len(live_pids(workspace / "pids.txt")) == 2, "the hook to hang")
    deployment_id, pid = runner_pid(workspace)
    os.kill(pid, signal.SIGKILL)
    out, err = waiting.communicate()
    assert waiting.returncode == 1, out + err
    assert f"{deployment_id} (app/fleet) was interrupted while InProgress" in err
    for command in ("resume-deployment", "stop-deployment", "rollback"):
        assert f"deploydeck {command} -w {workspace} --deployment-id {deployment_id}" in err
    assert "Traceback" not in out + err


def deployment_row(workspace: Path, deployment_id: str) -> sqlite3.Row:
    with contextlib.closing(sqlite3.connect(workspace / ".deploydeck" / "state.db")) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM deployments WHERE id=?", (deployment_id,)).fetchone()


def runner_log(workspace: Path) -> str:
    return "".join(p.read_text() for p in (workspace / ".deploydeck" / "runs").glob("*.log"))


def ended_or_orphaned(workspace: Path, deployment_id: str) -> bool:
    row = deployment_row(workspace, deployment_id)
    return row["status"] in ("Succeeded", "Failed", "Stopped") or not pid_alive(row["engine_pid"])


def test_database_locked_during_a_deployment(tmp_path: Path) -> None:
    """Another process holds state.db's write lock past the busy timeout mid-deployment ->
    the runner waits it out (saying so in its log) and no instance is failed for it."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(
        workspace, 2, config="CodeDeployDefault.AllAtOnce", env={"i01": {"HOOK_SLEEP": "1"}}
    )
    revision = make_revision(tmp_path, "v1")
    code, out, err = run(
        tmp_path,
        "-w",
        str(workspace),
        "create-deployment",
        *target(revision),
        env={"DEPLOYDECK_DB_BUSY_TIMEOUT": "0.5"},  # the runner inherits it
    )
    assert code == 0, err
    deployment_id = out.strip()
    db = workspace / ".deploydeck" / "state.db"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        started = "SELECT COUNT(*) FROM journal WHERE kind='ScriptStarted'"
        wait_for(lambda: holder.execute(started).fetchone()[0] >= 2, "hooks to start")
        holder.execute("BEGIN EXCLUSIVE")
        wait_for(lambda: "is locked by another process" in runner_log(workspace), "a wait")
        time.sleep(1)  # i01's hook (1 s) ends while the lock is held
        holder.execute("COMMIT")
    wait_for(lambda: ended_or_orphaned(workspace, deployment_id), "the end")
    row = deployment_row(workspace, deployment_id)
    log = (workspace / ".deploydeck" / "runs" / f"{deployment_id}.log").read_text()
    assert row["status"] == "Succeeded", (row["error_message"], log)
    assert "waiting for the state database" in log and "is locked by another process" in log
    assert "Traceback" not in log
    with contextlib.closing(sqlite3.connect(db)) as conn:
        statuses = conn.execute(
            "SELECT instance, status FROM deployment_instances WHERE deployment_id=?",
            (deployment_id,),
        ).fetchall()
    assert sorted(statuses) == [("i01", "Succeeded"), ("i02", "Succeeded")]


def test_corrupt_state_database(tmp_path: Path) -> None:
    """state.db is not a database -> every command says so in one line, with how to move it
    aside and what is lost; no traceback."""
    workspace, revision = hanging_fleet(tmp_path)
    state = workspace / ".deploydeck"
    state.mkdir()
    (state / "state.db").write_bytes(b"this is not a database\n" * 500)
    for args in (
        [],  # the console
        ["list-deployments"],
        ["list-deployments", "--output", "json"],
        ["get-deployment", "--deployment-id", "d-123456789"],
        ["create-deployment", *target(revision)],
    ):
        code, out, err = run(workspace, *args)
        assert code == 1, (args, out, err)
        shown = out + err
        assert "Traceback" not in shown and "sqlite3." not in shown, shown
        assert f"{state / 'state.db'} is damaged (file is not a database)" in shown, shown
        assert "mv " in shown and "cannot be rebuilt" in shown
    assert not (workspace / "pids.txt").exists()  # nothing ran


def test_create_deployment_while_the_database_is_locked(tmp_path: Path) -> None:
    """state.db is held locked by another process -> create-deployment gives up after the
    busy timeout with one line naming the lock and what to do; nothing is recorded."""
    workspace, revision = hanging_fleet(tmp_path)
    code, _, err = run(workspace, "list-deployments")  # makes state.db
    assert code == 0, err
    db = workspace / ".deploydeck" / "state.db"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        code, out, err = run(
            workspace,
            "create-deployment",
            *target(revision),
            env={"DEPLOYDECK_DB_BUSY_TIMEOUT": "1"},
        )
        holder.execute("ROLLBACK")
    assert code == 1
    assert "Traceback" not in out + err
    assert f"ERROR: {db} is locked by another process" in out and "fuser" in out
    assert deployment_count(db) == 0
    assert not (workspace / "pids.txt").exists()


def deployment_count(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT COUNT(*) FROM deployments").fetchone()[0]


SLOW_HOOK = """\
#!/bin/sh
echo $$ >> "$PID_FILE"
sleep 1000 &
echo $! >> "$PID_FILE"
wait
"""


def test_runner_killed_while_a_hook_and_a_trigger_run(tmp_path: Path) -> None:
    """The runner is SIGKILLed while a local hook (timeout 5 s) sleeps and a trigger command
    runs -> its watchdog ends both process groups (hook timeouts hold without the runner)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    trigger_pids = tmp_path / "trigger.pids"
    write_workspace(
        workspace,
        1,
        triggers=[
            {
                "name": "slow",
                "events": ["DeploymentStart"],
                "command": f"echo $$ >> {trigger_pids}; sleep 1000",
            }
        ],
    )
    revision = write_tree(
        tmp_path / "slow",
        {
            "appspec.yml": "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n"
            "    - location: slow.sh\n      timeout: 5\n",
            "slow.sh": SLOW_HOOK,
        },
    )
    code, _, err = run(tmp_path, "-w", str(workspace), "create-deployment", *target(revision))
    assert code == 0, err
    pid_file = workspace / "pids.txt"
    wait_for(lambda: len(live_pids(pid_file)) == 2 and trigger_pids.exists(), "hook and trigger")
    _, runner = runner_pid(workspace)
    left = live_pids(pid_file) + live_pids(trigger_pids)
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in left), "the hook and the trigger to end")
    log = next((workspace / ".deploydeck" / "runs").glob("*.log")).read_text()
    assert "watchdog: runner" in log and "died; ending the process groups" in log


def test_runner_dies_on_a_full_disk_while_create_deployment_waits(tmp_path: Path) -> None:
    """.deploydeck's filesystem fills up mid-deployment and the runner dies writing ->
    `create-deployment --wait` exits 1 with the recovery commands instead of hanging."""
    workspace = tmp_path / "ws"
    state = workspace / ".deploydeck"
    state.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(state)], check=True)
    try:
        write_workspace(
            workspace,
            2,
            config="CodeDeployDefault.OneAtATime",
            env={name: {"HOOK_SLEEP": "1"} for name in ("i01", "i02")},
        )
        revision = make_revision(tmp_path, "v1")
        waiting = dd(
            tmp_path, "-w", str(workspace), "create-deployment", *target(revision), "--wait"
        )
        deployment_id, _ = runner_pid(workspace)
        with open(state / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:  # until ENOSPC: the disk is full
                filler.write(b"\0" * 65536)
                filler.flush()
        out, err = waiting.communicate()
        assert waiting.returncode == 1, out + err
        assert f"{deployment_id} (app/fleet) was interrupted while " in err  # Created or later
        assert f"deploydeck resume-deployment -w {workspace} --deployment-id" in err
        assert "Traceback" not in out + err
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


TICKING_HOOK = """\
#!/bin/sh
echo $$ >> "$PID_FILE"
while :; do echo tick; sleep 0.2; done
"""


def test_hook_timeout_holds_while_the_database_is_locked(tmp_path: Path) -> None:
    """state.db stays locked while a hook overruns its timeout -> the runner, not held up by
    the lock, ends the hook on time; the instance fails for its own timeout only."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(workspace, 1)
    revision = write_tree(
        tmp_path / "slow",
        {
            "appspec.yml": "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n"
            "    - location: ticks.sh\n      timeout: 2\n",
            "ticks.sh": TICKING_HOOK,
        },
    )
    code, out, err = run(
        tmp_path,
        "-w",
        str(workspace),
        "create-deployment",
        *target(revision),
        env={"DEPLOYDECK_DB_BUSY_TIMEOUT": "0.5"},
    )
    assert code == 0, err
    deployment_id = out.strip()
    pid_file = workspace / "pids.txt"
    wait_for(lambda: len(live_pids(pid_file)) == 1, "the hook to start")
    hook = live_pids(pid_file)
    db = workspace / ".deploydeck" / "state.db"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        wait_for(lambda: not any(pid_alive(p) for p in hook), "the timeout to end the hook")
        wait_for(lambda: "is locked by another process" in runner_log(workspace), "a wait")
        holder.execute("COMMIT")
    wait_for(lambda: ended_or_orphaned(workspace, deployment_id), "the end")
    row = deployment_row(workspace, deployment_id)
    log = (workspace / ".deploydeck" / "runs" / f"{deployment_id}.log").read_text()
    assert row["status"] == "Failed", (row["error_message"], log)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (diagnostics,) = conn.execute(
            "SELECT diagnostics FROM lifecycle_events WHERE event='BeforeInstall'"
        ).fetchone()
    assert '"ScriptTimedOut"' in diagnostics
    assert "is locked by another process" in log and "Traceback" not in log


def test_runner_terminated_mid_hook(tmp_path: Path) -> None:
    """The runner gets SIGTERM while a hook hangs -> the deployment is Stopped (no rollback),
    the hook's process group is ended, and nothing is left interrupted."""
    workspace, revision = hanging_fleet(tmp_path)
    code, out, err = run(tmp_path, "-w", str(workspace), "create-deployment", *target(revision))
    assert code == 0, err
    wait_for(lambda: len(live_pids(workspace / "pids.txt")) == 2, "the hook to hang")
    hook = live_pids(workspace / "pids.txt")
    deployment_id, runner = runner_pid(workspace)
    os.kill(runner, signal.SIGTERM)
    wait_for(lambda: not pid_alive(runner), "the runner to end")
    row = deployment_row(workspace, deployment_id)
    assert row["status"] == "Stopped" and "no rollback" in row["rollback_message"]
    assert not any(pid_alive(p) for p in hook)
    code, out, _ = run(tmp_path, "-w", str(workspace), "list-deployments")
    assert code == 0 and "interrupted" not in out


def test_follower_killed_while_waiting(tmp_path: Path) -> None:
    """`create-deployment --wait` itself is SIGKILLed -> the deployment carries on in its own
    runner process to the end."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(workspace, 2, env={"i01": {"HOOK_SLEEP": "1"}})
    revision = make_revision(tmp_path, "v1")
    waiting = dd(tmp_path, "-w", str(workspace), "create-deployment", *target(revision), "--wait")
    deployment_id, _ = runner_pid(workspace)
    waiting.kill()
    waiting.communicate()
    wait_for(lambda: ended_or_orphaned(workspace, deployment_id), "the end")
    row = deployment_row(workspace, deployment_id)
    assert row["status"] == "Succeeded", (
        row["status"],
        row["error_message"],
        runner_log(workspace),
    )


def test_revision_snapshot_edited_by_hand(tmp_path: Path) -> None:
    """A registered revision's snapshot under .deploydeck/revisions is edited -> a deployment
    of it is refused with what changed and what to do; nothing runs."""
    workspace, revision = hanging_fleet(tmp_path)
    code, out, err = run(
        workspace, "register-revision", "--application-name", "app", "--revision", str(revision)
    )
    assert code == 0, out + err
    sha = out.split()[1]
    snapshot = workspace / ".deploydeck" / "revisions" / sha
    (snapshot / "site" / "index.html").write_text("edited\n")
    code, out, err = run(
        workspace,
        "create-deployment",
        *group_args(),
        "--registered-revision",
        sha[:12],
    )
    assert code == 1 and "Traceback" not in out + err
    assert f"The snapshot {snapshot} no longer matches revision" in out
    assert "Delete it and deploy the revision from its source again" in out
    assert not (workspace / "pids.txt").exists()
