"""Fault matrix: secrets and file modes on the controller and on SSH hosts, host keys, hosts
without SFTP, and terminal escape sequences in hook output."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from engine.store import Store
from engine.targets.asyncssh_quiet import asyncssh
from tests.command_line import create_deployment
from tests.engine.fleet import make_revision, tree_digest, write_workspace
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
        *create_deployment(str(revision)),
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder any user may traverse, outside pytest's basetemp: another pytest session on the
    machine makes /tmp/pytest-of-<user> 0700 again whenever it starts."""
    folder = Path(tempfile.mkdtemp(prefix="deploydeck-faults-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fleet(open_tmp: Path) -> Iterator[SshFleet]:
    """An OpenSSH fleet with no host yet (each test adds what it needs)."""
    try:
        fleet = SshFleet(open_tmp / "ssh")
    except SshdError as error:
        pytest.fail(f"{error}; run ./scripts/test, which installs openssh-server ({SSHD})")
    try:
        yield fleet
    finally:
        fleet.shutdown()


@pytest.fixture(autouse=True)
async def _close_engines() -> AsyncIterator[None]:
    yield
    await h.close_engines()


@pytest.fixture
def workspace_dir(open_tmp: Path) -> Path:
    folder = open_tmp / "workspace"
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


def test_state_logs_and_revision_caches_are_owner_only(open_tmp: Path, umask_022: None) -> None:
    """state.db, its -wal/-shm, the runs' logs and the revision caches under umask 022 -> 0600 files in 0700 folders; another user reads none of them."""
    folder = open_tmp / "ws"
    folder.mkdir()
    secret_workspace(folder)
    revision = revision_with_private_file(open_tmp / "revisions")
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


def test_state_made_by_an_older_version_is_tightened(open_tmp: Path, umask_022: None) -> None:
    """A workspace whose state.db (and -wal) and revision cache are world-readable -> the next command makes them owner-only."""
    folder = open_tmp / "ws"
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
        deploy_cli(folder, make_revision(open_tmp / "revisions", "v1"))
        assert (mode(state / "state.db"), mode(wal)) == (0o600, 0o600)
        assert mode(state / "revisions") == 0o700
    finally:
        old.close()


def test_a_secret_variable_reaches_no_file(open_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hooks print a secret variable, and a failing trigger command one read from the environment -> neither is in any file under .deploydeck nor the instance folders (journal, state.db, runs' logs, scripts.log, the agent's log), nor on the screen."""
    folder = open_tmp / "ws"
    folder.mkdir()
    path = secret_workspace(folder, 2)
    from_env = "from-env-Yw7rT2-secret"
    monkeypatch.setenv("DEPLOYDECK_FAULTS_TOKEN", from_env)  # the runner inherits it
    document = yaml.safe_load(path.read_text())
    document["instances"]["i01"]["environment"]["API_TOKEN"] = {
        "from_env": "DEPLOYDECK_FAULTS_TOKEN",
        "secret": True,
    }
    document["applications"]["app"]["deployment_groups"]["fleet"]["triggers"] = [
        {
            "name": "leaky",
            "events": ["DeploymentStart"],
            "command": 'echo "token $DEPLOYDECK_FAULTS_TOKEN" >&2; exit 1',
        }
    ]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    revision = revision_with_private_file(open_tmp / "revisions")
    done = deploy_cli(folder, revision)
    (deployment_id,) = set(re.findall(r"\bd-[0-9A-Z]{9}\b", done.stdout))
    shown = h.dd(folder, "get-deployment", "--deployment-id", deployment_id)
    assert shown.returncode == 0, shown.stdout
    store = Store(folder / ".deploydeck" / "state.db")
    try:
        events = [e.event for e in store.journal(None, limit=1_000_000)]
    finally:
        store.close()
    lines = [e.line.rstrip("\n") for e in events if getattr(e, "line", None)]
    assert "password ***" in lines and "on stderr ***" in lines  # the output was kept, masked
    notes = [e.message for e in events if getattr(e, "level", None) == "warning"]
    assert any("leaky" in n and "token ***" in n for n in notes)  # the trigger's error, masked
    for secret in (SECRET, from_env):
        assert files_holding(folder / ".deploydeck", secret) == []
        assert secret not in done.stdout + done.stderr + shown.stdout + shown.stderr


@pytest.mark.ssh
async def test_a_host_without_sftp_is_deployed(
    fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """An sshd without the SFTP subsystem -> the agent and the bundle go over a command's input, and the deployment succeeds."""
    (host,) = fleet.add_hosts(["nosftp"], sftp=False)
    async with await fleet.connect("nosftp") as connection:
        with pytest.raises(asyncssh.Error):  # the host really has no SFTP
            await connection.start_sftp_client()
    path = fleet.write_workspace(workspace_dir)
    revision = make_revision(tmp_path, "v1")
    final = await h.deploy(h.engine_for(path), revision)
    assert final.status == "Succeeded", final.error_message
    assert [i.status for i in final.instances] == ["Succeeded"]
    assert tree_digest(h.site(host)) == tree_digest(revision / "site")


@pytest.mark.ssh
async def test_the_ssh_host_cache_is_owner_only(
    fleet: SshFleet, workspace_dir: Path, tmp_path: Path, umask_022: None
) -> None:
    """An SSH host under umask 022 -> its ~/.deploydeck (agent, bundles) is 0600 files in 0700 folders, older copies are tightened, and another user reads none of it."""
    (host,) = fleet.add_hosts(["cache"])
    path = fleet.write_workspace(workspace_dir, instances={"cache": {"agent_root": None}})
    revision = revision_with_private_file(tmp_path)
    engine = h.engine_for(path)
    assert (await h.deploy(engine, revision)).status == "Succeeded"
    cache = host.home / ".deploydeck"
    folders = [cache, cache / "agent", cache / "bundles"]
    (agent,) = (cache / "agent").iterdir()
    (bundle,) = (cache / "bundles").iterdir()
    assert [mode(p) for p in folders] == [0o700] * 3
    assert (mode(agent), mode(bundle)) == (0o600, 0o600)
    assert mode(cache / "deployment-root") == 0o711
    assert read_as_nobody(host.home / ".." / "sshd" / "sshd_config").returncode == 0
    for copy in (agent, bundle):
        refused = read_as_nobody(copy)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr

    for p in folders:  # as an older deploydeck left them
        p.chmod(0o755)
    for p in (agent, bundle):
        p.chmod(0o644)
    assert (await h.deploy(h.engine_for(path), revision)).status == "Succeeded"
    assert [mode(p) for p in folders] == [0o700] * 3
    assert (mode(agent), mode(bundle)) == (0o600, 0o600)


@pytest.mark.ssh
async def test_a_secret_variable_reaches_no_file_on_an_ssh_host(
    fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """Hooks on an SSH host print a secret variable -> it is in no file on the controller nor on the host (its ~/.deploydeck and agent root)."""
    (host,) = fleet.add_hosts(["secret"])
    path = fleet.write_workspace(workspace_dir)
    document = yaml.safe_load(path.read_text())
    document["instances"]["secret"]["environment"]["DB_PASSWORD"] = {
        "value": SECRET,
        "secret": True,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    engine = h.engine_for(path)
    final = await h.deploy(engine, revision_with_private_file(tmp_path))
    assert final.status == "Succeeded", final.error_message
    assert "password ***" in h.hook_lines(engine, final.id, "secret")
    assert files_holding(workspace_dir / ".deploydeck", SECRET) == []
    assert files_holding(host.folder, SECRET) == []


# A hook printing what would retitle the terminal, clear it and turn it red, with a one-byte
# CSI and a bidi override, then tabs and plain text.
NASTY = "title\x1b]0;pwned\x07 clear\x1b[2J red\x1b[31m csi\x9b2J bidi\u202e\tend"
SHOWN = "title\\x1b]0;pwned\\x07 clear\\x1b[2J red\\x1b[31m csi\\x9b2J bidi\\u202e\tend"
NASTY_HOOK = (
    "#!/bin/sh\n"
    "printf 'title\\033]0;pwned\\007 clear\\033[2J red\\033[31m csi\\302\\2332J "
    "bidi\\342\\200\\256\\tend\\n'\n"
    "printf 'err\\033[2J\\n' >&2\n"
    "exit 1\n"
)
SHOWN_HEAD = SHOWN.split("\t")[0]  # Rich prints a tab as spaces
CONTROL_BYTES = ("\x1b", "\x07", "\x9b", "\u202e")


def nasty_revision(root: Path) -> Path:
    """A revision whose ApplicationStart prints NASTY and then fails."""
    appspec = {
        "version": 0.0,
        "os": "linux",
        "hooks": {"ApplicationStart": [{"location": "hooks/start.sh", "timeout": 60}]},
    }
    root.mkdir(parents=True)
    (root / "appspec.yml").write_text(yaml.safe_dump(appspec))
    (root / "hooks").mkdir()
    (root / "hooks" / "start.sh").write_text(NASTY_HOOK)
    (root / "hooks" / "start.sh").chmod(0o755)
    return root


def test_terminal_escapes_in_hook_output_are_shown_not_obeyed_by_local(tmp_path: Path) -> None:
    """A hook prints terminal escape sequences under `deploydeck local` -> its output and evidence show them as visible text (\\x1b...), no control byte reaches the terminal."""
    revision = nasty_revision(tmp_path / "nasty")
    raw = subprocess.run([revision / "hooks" / "start.sh"], capture_output=True, text=True)
    assert raw.stdout == NASTY + "\n"  # the hook really prints those control characters
    done = subprocess.run(
        [*h.DEPLOYDECK, "local", "-l", str(revision)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(h.REPO), "XDG_DATA_HOME": str(tmp_path / "data")},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count(SHOWN_HEAD) == 2  # as it ran, and in the failure's last output
    assert "err\\x1b[2J" in done.stdout
    assert not [c for c in CONTROL_BYTES if c in done.stdout + done.stderr]


def test_terminal_escapes_in_hook_output_are_shown_not_obeyed_by_the_fleet_cli(
    tmp_path: Path,
) -> None:
    """A fleet hook prints terminal escape sequences -> create-deployment's failure summary and `journal --show-output` show them as visible text, no control byte reaches the terminal."""
    folder = tmp_path / "ws"
    folder.mkdir()
    write_workspace(folder, 1)
    failed = h.dd(
        folder,
        *create_deployment(str(nasty_revision(tmp_path / "nasty"))),
        "--wait",
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    (deployment_id,) = set(re.findall(r"\bd-[0-9A-Z]{9}\b", failed.stdout))
    replay = h.dd(folder, "journal", "--deployment-id", deployment_id, "--show-output")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert SHOWN_HEAD in failed.stdout and SHOWN_HEAD in replay.stdout
    for done in (failed, replay):
        assert not [c for c in CONTROL_BYTES if c in done.stdout + done.stderr]


async def test_terminal_escapes_in_hook_output_are_shown_not_obeyed_in_the_console(
    tmp_path: Path,
) -> None:
    """A hook prints terminal escape sequences -> the console's output pane and evidence show them as visible text, and the screen holds no control byte."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from tui.render.state import FleetState
    from tui.screens.deployment import evidence
    from tui.widgets.log_pane import LogPane

    folder = tmp_path / "ws"
    folder.mkdir()
    engine = h.engine_for(write_workspace(folder, 1))
    final = await h.deploy(engine, nasty_revision(tmp_path / "nasty"))
    assert final.status == "Failed"
    state = FleetState()
    for event in h.journal(engine, final.id):
        state.apply(event)
    instance = state.deployments[final.id].instances["i01"]

    class Console(App[None]):
        def compose(self) -> ComposeResult:
            yield LogPane()
            yield Static(evidence(instance), id="evidence")

    app = Console()
    async with app.run_test(size=(200, 40)) as pilot:
        pane = app.query_one(LogPane)
        pane.show_instance("i01", instance.output, instance.output_total)
        await pilot.pause()
        screen = app.export_screenshot()
        shown = "\n".join(pane.lines)
    assert f"[stdout] {SHOWN}" in shown
    assert not [c for c in CONTROL_BYTES if c in shown]
    assert SHOWN_HEAD in str(evidence(instance))
    assert not [c for c in CONTROL_BYTES if c in str(evidence(instance)) + screen]


@pytest.mark.ssh
async def test_an_unwritable_bundle_cache_names_the_path(
    fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """The host's bundle cache cannot be written (a file stands where its folder goes) -> the instance fails HostSetupFailed with the path and the reason, nothing is installed."""
    (host,) = fleet.add_hosts(["blocked"])
    (host.home / ".deploydeck").mkdir(parents=True)
    (host.home / ".deploydeck" / "bundles").write_text("not a folder\n")
    engine = h.engine_for(fleet.write_workspace(workspace_dir))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    failed = final.instance("blocked").failed_event()
    assert failed is not None and failed.name == "DownloadBundle"
    message = failed.diagnostics.message
    assert failed.diagnostics.error_code == "HostSetupFailed", message
    assert f"cannot write {host.home}/.deploydeck/bundles/" in message
    assert "exists" in message or "not a directory" in message.lower()
    assert tree_digest(h.site(host)) == {}


def test_a_multi_line_secret_printed_by_a_hook_is_masked_line_by_line(open_tmp: Path) -> None:
    """A hook prints a multi-line secret (a key), which reaches the controller one line at a time -> every line of it is masked in the journal, state.db, the runs' logs and on the screen."""
    key_lines = ["-----BEGIN DEMO KEY-----", "MIIEowIBAAKCAQEAx9Qk2v", "-----END DEMO KEY-----"]
    folder = open_tmp / "ws"
    folder.mkdir()
    path = write_workspace(folder, 1)
    document = yaml.safe_load(path.read_text())
    document["instances"]["i01"]["environment"]["TLS_KEY"] = {
        "value": "\n".join(key_lines) + "\n",
        "secret": True,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    revision = make_revision(open_tmp / "revisions", "v1")
    (revision / "hooks" / "AfterInstall.sh").write_text('#!/bin/sh\necho "key:"\necho "$TLS_KEY"\n')
    done = deploy_cli(folder, revision)
    (deployment_id,) = set(re.findall(r"\bd-[0-9A-Z]{9}\b", done.stdout))
    replay = h.dd(folder, "journal", "--deployment-id", deployment_id, "--show-output")
    store = Store(folder / ".deploydeck" / "state.db")
    try:
        lines = [
            e.event.line.rstrip("\n")
            for e in store.journal(deployment_id, limit=1_000_000)
            if getattr(e.event, "line", None) and e.event.event == "AfterInstall"
        ]
    finally:
        store.close()
    assert lines == ["key:", "***", "***", "***", ""]
    for line in key_lines:  # the controller's own files (the instances' are the agent's)
        held = files_holding(folder / ".deploydeck", line)
        assert [p for p in held if not p.startswith("instances/")] == []
        assert line not in replay.stdout + done.stdout
