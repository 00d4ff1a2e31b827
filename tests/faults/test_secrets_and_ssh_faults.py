"""Fault matrix: secrets and file modes on the controller and on SSH hosts, host keys, hosts
without SFTP, and terminal escape sequences in hook output."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from engine.store import Store
from tests.engine.fleet import make_revision, write_workspace
from tests.ssh import helpers as h
from tests.ssh.sshd import SSHD, SshdError, SshFleet

SECRET = "hunter2-Zq8vX3-secret"
NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_as_nobody(path: Path) -> subprocess.CompletedProcess:
    """`cat path` as the user nobody: what another user of the machine can read."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "cat", str(path)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, which makes new files 0644: what deploydeck must not rely on."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def secret_workspace(folder: Path, count: int = 1) -> Path:
    """Local instances i01... whose DB_PASSWORD is a secret variable."""
    path = write_workspace(folder, count)
    document = yaml.safe_load(path.read_text())
    for instance in document["instances"].values():
        instance["environment"]["DB_PASSWORD"] = {"value": SECRET, "secret": True}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def revision_with_private_file(root: Path) -> Path:
    """A revision with an owner-only file (0600), and hooks that print DB_PASSWORD."""
    revision = make_revision(root, "v1")
    (revision / "site" / "private.key").write_text("PRIVATE KEY\n")
    (revision / "site" / "private.key").chmod(0o600)
    for event in ("BeforeInstall", "AfterInstall", "ApplicationStart"):
        (revision / "hooks" / f"{event}.sh").write_text(
            '#!/bin/sh\necho "password $DB_PASSWORD"\necho "on stderr $DB_PASSWORD" >&2\n'
        )
    return revision


def files_holding(root: Path, text: str) -> list[str]:
    """Every file under `root` whose bytes contain `text`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return sorted(found)


def deploy_cli(folder: Path, revision: Path) -> subprocess.CompletedProcess:
    done = h.dd(
        folder,
        "create-deployment",
        "--application-name",
        "app",
        "--deployment-group-name",
        "fleet",
        "--revision",
        str(revision),
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def fleet(world_readable_tmp: Path) -> Iterator[SshFleet]:
    """An OpenSSH fleet with no host yet (each test adds what it needs)."""
    try:
        fleet = SshFleet(world_readable_tmp / "ssh")
    except SshdError as error:
        pytest.fail(f"{error}; run ./scripts/test, which installs openssh-server ({SSHD})")
    try:
        yield fleet
    finally:
        fleet.shutdown()


@pytest.fixture
def workspace_dir(world_readable_tmp: Path) -> Path:
    folder = world_readable_tmp / "workspace"
    folder.mkdir()
    return folder


@pytest.mark.ssh
def test_trust_all_yes_keeps_a_changed_host_key(fleet: SshFleet, workspace_dir: Path) -> None:
    """`trust --all --yes` meets a changed host key -> it is not replaced without --replace-changed; both fingerprints and the flag are shown."""
    fleet.add_hosts(["k1", "k2"])
    fleet.write_workspace(workspace_dir)
    old = fleet.hosts["k1"].fingerprint
    new = fleet.replace_key("k1").get_fingerprint("sha256")
    fleet.known_hosts.write_text(
        fleet.known_hosts.read_text().replace(fleet.hosts["k2"].known_hosts_line, "")
    )  # k2 is unknown: --yes records it
    known_before = fleet.known_hosts.read_text()

    refused = h.dd(workspace_dir, "trust", "--all", "--yes")
    assert refused.returncode == 1
    assert refused.stderr == ""
    assert old in refused.stdout and new in refused.stdout
    assert "--replace-changed" in refused.stdout
    recorded = fleet.known_hosts.read_text()
    assert recorded.startswith(known_before)  # the changed key's old line is kept
    assert fleet.hosts["k2"].known_hosts_line in recorded
    assert fleet.hosts["k1"].known_hosts_line not in recorded

    replaced = h.dd(workspace_dir, "trust", "--all", "--yes", "--replace-changed")
    assert replaced.returncode == 0, replaced.stdout
    assert fleet.hosts["k1"].known_hosts_line in fleet.known_hosts.read_text()


def test_state_logs_and_revision_caches_are_owner_only(
    world_readable_tmp: Path, umask_022: None
) -> None:
    """state.db, its -wal/-shm, the runs' logs and the revision caches under umask 022 -> 0600 files in 0700 folders; another user reads none of them."""
    folder = world_readable_tmp / "ws"
    folder.mkdir()
    secret_workspace(folder)
    revision = revision_with_private_file(world_readable_tmp / "revisions")
    deploy_cli(folder, revision)
    state = folder / ".deploydeck"
    store = Store(state / "state.db")  # open: the -wal and -shm files exist meanwhile
    try:
        store.list_deployments()
        database = [state / name for name in ("state.db", "state.db-wal", "state.db-shm")]
        assert all(p.exists() for p in database)
        assert {p.name: mode(p) for p in database} == {p.name: 0o600 for p in database}
    finally:
        store.close()
    runs, revisions = state / "runs", state / "revisions"
    assert (mode(runs), mode(revisions)) == (0o700, 0o700)
    logs = list(runs.iterdir())
    assert logs and {mode(p) for p in logs} == {0o600}
    (snapshot,) = revisions.iterdir()
    cached = snapshot / "site" / "private.key"
    assert cached.read_text() == "PRIVATE KEY\n"
    assert read_as_nobody(folder / "deploydeck.yml").returncode == 0  # others can get here
    for path in (cached, logs[0], state / "state.db"):
        refused = read_as_nobody(path)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr, path


def test_state_made_by_an_older_version_is_tightened(
    world_readable_tmp: Path, umask_022: None
) -> None:
    """A workspace whose state.db (and -wal) and revision cache are world-readable -> the next command makes them owner-only."""
    folder = world_readable_tmp / "ws"
    folder.mkdir()
    secret_workspace(folder)
    state = folder / ".deploydeck"
    (state / "revisions").mkdir(parents=True)
    old = sqlite3.connect(state / "state.db")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    wal = state / "state.db-wal"
    assert mode(state / "state.db") == mode(wal) == 0o644
    try:
        deploy_cli(folder, make_revision(world_readable_tmp / "revisions", "v1"))
        assert (mode(state / "state.db"), mode(wal)) == (0o600, 0o600)
        assert mode(state / "revisions") == 0o700
    finally:
        old.close()


def test_a_secret_variable_reaches_no_file(world_readable_tmp: Path) -> None:
    """Hooks print a secret variable on stdout and stderr -> it is in no file under .deploydeck nor the instance folders (journal, state.db, runs' logs, scripts.log, the agent's log), and not on the screen."""
    folder = world_readable_tmp / "ws"
    folder.mkdir()
    secret_workspace(folder, 2)
    revision = revision_with_private_file(world_readable_tmp / "revisions")
    done = deploy_cli(folder, revision)
    (deployment_id,) = set(re.findall(r"\bd-[0-9A-Z]{9}\b", done.stdout))
    shown = h.dd(folder, "get-deployment", "--deployment-id", deployment_id)
    assert shown.returncode == 0, shown.stdout
    store = Store(folder / ".deploydeck" / "state.db")
    try:
        lines = [
            e.event.line.rstrip("\n")
            for e in store.journal(None, limit=1_000_000)
            if getattr(e.event, "line", None)
        ]
    finally:
        store.close()
    assert "password ***" in lines and "on stderr ***" in lines  # the output was kept, masked
    assert files_holding(folder / ".deploydeck", SECRET) == []
    assert SECRET not in done.stdout + done.stderr + shown.stdout + shown.stderr
