"""Faults around the runner's file workers: the forked processes that run local instances'
DownloadBundle and Install. Each test names the fault and what deploydeck promises.

Install of these revisions sets an ACL with `setfacl`, found on PATH: the tests put a
`setfacl` there that records its parent (the worker running the Install) and its own pid, then
holds until a gate file exists, so a test can act while an Install is under way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import yaml

from tests.command_line import dd_started, environment, group_args
from tests.engine.fleet import live_pids, make_revision, tree_digest, write_workspace
from tests.host.harness import pid_alive

SETFACL = """\
#!/bin/sh
echo "$PPID $$" >> "$SETFACL_LOG"
while [ ! -e "$SETFACL_GATE" ]; do sleep 0.02; done
exit 0
"""


class Fleet:
    """A workspace of local instances, revisions whose Install calls the held `setfacl`."""

    def __init__(self, folder: Path, count: int, env: dict | None = None) -> None:
        self.folder = folder
        self.workspace = folder / "ws"
        self.workspace.mkdir()
        write_workspace(self.workspace, count, env=env)
        tools = folder / "bin"
        tools.mkdir()
        (tools / "setfacl").write_text(SETFACL)
        (tools / "setfacl").chmod(0o755)
        self.log = folder / "setfacl.log"
        self.gate = folder / "gate"
        self.env = environment(
            PATH=f"{tools}:{os.environ['PATH']}",
            SETFACL_LOG=str(self.log),
            SETFACL_GATE=str(self.gate),
        )

    def revision(self, version: str) -> Path:
        revision = make_revision(self.folder / "revisions", version)
        appspec = yaml.safe_load((revision / "appspec.yml").read_text())
        appspec["permissions"] = [{"object": "/srv/app/version.txt", "acls": ["user:root:rw-"]}]
        (revision / "appspec.yml").write_text(yaml.safe_dump(appspec, sort_keys=False))
        return revision

    def deploy(self, revision: Path) -> subprocess.Popen[str]:
        args = ("-w", str(self.workspace), "create-deployment", *group_args())
        return dd_started(self.folder, *args, "--revision", str(revision), "--wait", env=self.env)

    def calls(self) -> list[tuple[int, int]]:
        """(worker pid, setfacl pid) of every setfacl started so far."""
        if not self.log.exists():
            return []
        pairs = [line.split() for line in self.log.read_text().splitlines()]
        return [(int(a), int(b)) for a, b in pairs]

    def instance(self, name: str) -> Path:
        return self.workspace / ".deploydeck" / "instances" / name

    def last_successful(self, name: str) -> str:
        markers = self.instance(name) / "agent" / "deployment-instructions"
        return (markers / "app.fleet_last_successful_install").read_text()

    def runner(self, deployment_id: str) -> int:
        with contextlib.closing(sqlite3.connect(self.workspace / ".deploydeck" / "state.db")) as db:
            row = db.execute("SELECT engine_pid FROM deployments WHERE id=?", (deployment_id,))
            return int(row.fetchone()[0])

    def deployment_ids(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.workspace / ".deploydeck" / "state.db")) as db:
            return [r[0] for r in db.execute("SELECT id FROM deployments ORDER BY create_time")]


def wait_for(predicate, what: str) -> None:
    """Poll until `predicate()` holds (no time limit: the test runner's own catches a hang)."""
    while not predicate():
        time.sleep(0.02)


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate()
    assert "Traceback" not in out + err
    return proc.returncode, out + err


def deployed(fleet: Fleet, version: str) -> Path:
    """Deploy `version` with the gate open; it succeeds."""
    fleet.gate.touch()
    revision = fleet.revision(version)
    code, output = finished(fleet.deploy(revision))
    assert code == 0, output
    fleet.gate.unlink()
    return revision


def test_no_worker_survives_the_run(tmp_path: Path) -> None:
    """A deployment to local instances -> their Installs ran in worker processes, not the
    runner, and none of them outlives the runner."""
    fleet = Fleet(tmp_path, 3)
    deployed(fleet, "v1")
    workers = {worker for worker, _ in fleet.calls()}
    runner = fleet.runner(fleet.deployment_ids()[0])
    assert runner not in workers and workers
    wait_for(lambda: not pid_alive(runner), "the runner to exit")
    assert [pid for pid in workers if pid_alive(pid)] == []
    for name in ("i01", "i02", "i03"):
        site = tree_digest(fleet.instance(name) / "fs" / "srv" / "app")
        assert sorted(site) == ["index.html", "version.txt"]


def test_file_workers_turned_off(tmp_path: Path) -> None:
    """DEPLOYDECK_FILE_WORKERS=0 -> the runner's own threads do the file work, with the same
    result."""
    fleet = Fleet(tmp_path, 2)
    fleet.env["DEPLOYDECK_FILE_WORKERS"] = "0"
    deployed(fleet, "v1")
    runner = fleet.runner(fleet.deployment_ids()[0])
    assert {worker for worker, _ in fleet.calls()} == {runner}
    for name in ("i01", "i02"):
        site = tree_digest(fleet.instance(name) / "fs" / "srv" / "app")
        assert sorted(site) == ["index.html", "version.txt"]


def test_worker_killed_mid_install(tmp_path: Path) -> None:
    """A file worker is killed while it runs an instance's Install -> that instance fails
    naming the worker and the signal, nothing is recorded as installed, and the next
    deployment leaves exactly the new revision's files."""
    fleet = Fleet(tmp_path, 2)
    deployed(fleet, "v1")
    before = {name: fleet.last_successful(name) for name in ("i01", "i02")}
    fleet.log.unlink()
    v2 = fleet.revision("v2")
    (v2 / "site" / "extra.txt").write_text("only in v2\n")
    waiting = fleet.deploy(v2)
    wait_for(lambda: len(fleet.calls()) == 2, "both Installs to reach setfacl")
    worker, held = fleet.calls()[0]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not pid_alive(worker), "the worker to end")
    fleet.gate.touch()  # the other Install goes on
    code, output = finished(waiting)
    assert "Install Failed UnknownError: The agent worker process" in output
    assert f"agent worker process {worker} running Install" in output
    assert "killed by signal SIGKILL" in output
    after = {name: fleet.last_successful(name) for name in ("i01", "i02")}
    assert sorted(a == b for a, b in zip(before.values(), after.values(), strict=True)) == [
        False,
        True,
    ]
    code, output = finished(fleet.deploy(v2))
    assert code == 0, output
    for name in ("i01", "i02"):
        site = tree_digest(fleet.instance(name) / "fs" / "srv" / "app")
        assert sorted(site) == ["extra.txt", "index.html", "version.txt"]
        assert (fleet.instance(name) / "fs" / "srv" / "app" / "version.txt").read_text() == "v2\n"
    del held


def test_stop_during_a_pooled_install(tmp_path: Path) -> None:
    """stop-deployment while one instance's Install hangs in a worker and another's hook
    runs -> the deployment stops within the kill grace, the hook, the worker and what it
    started are ended, and no worker outlives the runner."""
    fleet = Fleet(tmp_path, 2, env={"i02": {"HANG_ON": "BeforeInstall@v2"}})
    deployed(fleet, "v1")
    fleet.log.unlink()
    waiting = fleet.deploy(fleet.revision("v2"))
    pids = fleet.workspace / "pids.txt"
    wait_for(lambda: len(fleet.calls()) == 1, "i01's Install to reach setfacl")
    wait_for(lambda: len(live_pids(pids)) == 2, "i02's hook to hang")
    (worker, held), hook = fleet.calls()[0], live_pids(pids)
    deployment_id = fleet.deployment_ids()[-1]
    runner = fleet.runner(deployment_id)
    stop = dd_started(
        fleet.folder,
        "-w",
        str(fleet.workspace),
        "stop-deployment",
        "--deployment-id",
        deployment_id,
        env=fleet.env,
    )
    code, output = finished(stop)
    assert code == 0, output
    code, output = finished(waiting)
    assert code != 0 and "Stopped" in output, output
    wait_for(lambda: not pid_alive(runner), "the runner to exit")
    assert [pid for pid in (worker, held, *hook) if pid_alive(pid)] == []
    assert fleet.last_successful("i01").endswith(fleet.deployment_ids()[0])
