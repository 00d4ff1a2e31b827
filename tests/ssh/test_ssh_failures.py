"""What goes wrong with SSH hosts, on a real OpenSSH fleet: a dead sshd, changed or unknown host
keys (and `deploydeck trust`), a refused login, no python3, nothing listening."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.targets.ssh_connection import CONNECT_TIMEOUT
from tests.engine.fleet import live_pids, make_revision, tree_digest
from tests.ssh import helpers as h
from tests.ssh.sshd import SshFleet, kill_all, new_key, wait_gone

pytestmark = pytest.mark.ssh

HALF = "CodeDeployDefault.HalfAtATime"


def finished(engine, deployment_id: str, instance: str, event: str) -> ev.LifecycleEventFinished:
    return next(
        e
        for e in h.journal(engine, deployment_id)
        if isinstance(e, ev.LifecycleEventFinished) and e.instance == instance and e.event == event
    )


async def test_sshd_killed_during_a_hook(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """i01's sshd dies while its AfterInstall hook sleeps (timeout 120 s): the instance fails
    ConnectionLost within seconds, counts as unhealthy (HalfAtATime's later batches shrink to
    one instance) and the hook does not outlive its session on the host."""
    path = ssh_fleet.write_workspace(
        workspace_dir, config=HALF, env={"i01": {"HANG_ON": "AfterInstall"}}
    )
    engine = h.engine_for(path)
    created = await engine.create_deployment(h.request(make_revision(tmp_path, "v1")))
    pid_file = workspace_dir / "pids.txt"
    await h.wait_for(lambda: len(live_pids(pid_file)) == 2, what="i01's AfterInstall to hang")
    hung = live_pids(pid_file)
    host = ssh_fleet.hosts["i01"]
    assert host.connections() == 1  # the deployment's one connection to i01
    killed_at = time.time()
    ssh_fleet.kill("i01")
    final = await engine.wait(created.id, timeout=120)

    assert final.status == "Succeeded", final.error_message
    failed = final.instance("i01").failed_event()
    assert failed.name == "AfterInstall"
    assert failed.diagnostics.error_code == "ConnectionLost", failed.diagnostics
    assert "lost during AfterInstall" in failed.diagnostics.message
    noticed = finished(engine, final.id, "i01", "AfterInstall").time - killed_at
    print(f"ConnectionLost {noticed:.2f} s after the sshd was killed (hook timeout 120 s)")
    assert noticed < 30
    states = [
        e.state
        for e in h.journal(engine, final.id)
        if isinstance(e, ev.InstanceConnection) and e.instance == "i01"
    ]
    assert states == ["connecting", "connected", "lost"]
    # the failure counts against the minimum healthy hosts (3 of 5): one at a time from then on
    assert h.batches_of(engine, final.id) == [("i01", "i02"), ("i03",), ("i04",), ("i05",)]
    assert {i.name: i.status for i in final.instances} == {
        "i01": "Failed",
        "i02": "Succeeded",
        "i03": "Succeeded",
        "i04": "Succeeded",
        "i05": "Succeeded",
    }
    # the agent saw its input end with the session and ended the hook's process group
    assert wait_gone(hung, timeout=15) == []
    assert wait_gone(h.agent_processes(host), timeout=15) == []


async def test_frozen_host_is_noticed_by_keepalives(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """i01's sshd stops answering (SIGSTOP) during a hook: keepalives give up on it and the
    instance fails ConnectionLost long before the hook's timeout; once the sshd runs again it
    finds its client gone and the hook ends with the session."""
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i01", "i02"], env={"i01": {"HANG_ON": "AfterInstall"}}
    )
    engine = h.engine_for(path)
    created = await engine.create_deployment(h.request(make_revision(tmp_path, "v1")))
    pid_file = workspace_dir / "pids.txt"
    await h.wait_for(lambda: len(live_pids(pid_file)) == 2, what="i01's AfterInstall to hang")
    hung = live_pids(pid_file)
    frozen = ssh_fleet.hosts["i01"].sshd_pids()
    kill_all(frozen, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        final = await engine.wait(created.id, timeout=120)
    finally:
        kill_all(frozen, signal.SIGCONT)
    assert final.status == "Succeeded", final.error_message
    diagnostics = final.instance("i01").failed_event().diagnostics
    assert diagnostics.error_code == "ConnectionLost"
    assert "keepalive" in diagnostics.message
    noticed = finished(engine, final.id, "i01", "AfterInstall").time - stopped_at
    print(f"frozen host noticed after {noticed:.1f} s (keepalive 3 s x 3; hook timeout 120 s)")
    assert noticed < 60
    assert wait_gone(hung, timeout=30) == []


async def test_a_silent_network_failure_still_ends_the_remote_hook(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """i02 is reached through i01; i01 freezes (SIGSTOP) while i02's hook hangs, as a network
    partition would: i02's sshd never sees its client go. The engine notices by keepalives,
    and i02's agent, without heartbeats, ends the hook on its own while i01 stays frozen."""
    jump = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(
        workspace_dir,
        ["i02"],
        env={"i02": {"HANG_ON": "AfterInstall"}},
        instances={"i02": {"proxy_jump": f"root@127.0.0.1:{jump.port}"}},
    )
    engine = h.engine_for(path)
    created = await engine.create_deployment(h.request(make_revision(tmp_path, "v1")))
    pid_file = workspace_dir / "pids.txt"
    await h.wait_for(lambda: len(live_pids(pid_file)) == 2, what="i02's AfterInstall to hang")
    hung = live_pids(pid_file)
    frozen = jump.sshd_pids()
    kill_all(frozen, signal.SIGSTOP)
    cut_at = time.time()
    try:
        final = await engine.wait(created.id, timeout=120)
        assert final.instance("i02").failed_event().diagnostics.error_code == "ConnectionLost"
        assert wait_gone(hung, timeout=45) == []
        gone_after = time.time() - cut_at
        assert wait_gone(h.agent_processes(ssh_fleet.hosts["i02"]), timeout=15) == []
        assert all(pid_alive_stopped(pid) for pid in frozen)  # still cut off throughout
    finally:
        kill_all(frozen, signal.SIGCONT)
    print(f"the hook on i02 ended {gone_after:.1f} s after the network went silent")


def pid_alive_stopped(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state == "T"


async def test_changed_host_key_is_refused_until_trusted(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    path = ssh_fleet.write_workspace(workspace_dir)
    old = ssh_fleet.hosts["i02"].fingerprint
    new = ssh_fleet.replace_key("i02")
    engine = h.engine_for(path)
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Succeeded"  # AllAtOnce: the four others
    failed = final.instance("i02").failed_event()
    assert failed.name == "ApplicationStop"
    assert failed.diagnostics.error_code == "HostKeyChanged"
    message = failed.diagnostics.message
    assert new.get_fingerprint("sha256") in message and old in message  # both, told apart
    assert message.index(new.get_fingerprint("sha256")) < message.index(old)
    assert "CHANGED" in message and "deploydeck trust i02 --replace-changed" in message
    assert {e.status for e in final.instance("i02").events[1:]} == {"Skipped"}
    assert list(ssh_fleet.hosts["i02"].agent_root.iterdir()) == []  # nothing ran there
    assert tree_digest(h.site(ssh_fleet.hosts["i02"])) == {}

    # without --yes and without a terminal, trust shows the key and records nothing
    known = ssh_fleet.known_hosts.read_text()
    refused = h.dd(workspace_dir, "trust", "i02")
    assert refused.returncode == 1
    assert "CHANGED" in refused.stdout and new.get_fingerprint("sha256") in refused.stdout
    assert "not recorded" in refused.stdout
    assert ssh_fleet.known_hosts.read_text() == known

    trusted = h.dd(workspace_dir, "trust", "i02", "--replace-changed")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    recorded = ssh_fleet.known_hosts.read_text()
    assert ssh_fleet.hosts["i02"].known_hosts_line in recorded
    assert recorded.count(f"[127.0.0.1]:{ssh_fleet.hosts['i02'].port} ") == 1  # the old one went
    again = h.dd(workspace_dir, "trust", "i02")
    assert again.returncode == 0 and "already trusted" in again.stdout

    second = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v2"))
    assert second.status == "Succeeded", second.error_message
    assert {i.status for i in second.instances} == {"Succeeded"}


async def test_unknown_host_with_the_real_cli(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """The command line end to end: `create-deployment --wait` (a runner process) fails on a
    host whose key is not in known_hosts, `trust` without a terminal records nothing,
    `trust --yes` records it, and the next deployment reaches all six hosts. i06 has no
    `known_hosts:` of its own, so its key goes to the workspace's .deploydeck/known_hosts."""
    (unknown,) = ssh_fleet.add_hosts(["i06"], trusted=False)
    order = ["i06", *h.names(ssh_fleet, exclude=["i06"])]
    ssh_fleet.write_workspace(
        workspace_dir,
        order,
        config="CodeDeployDefault.OneAtATime",
        instances={"i06": {"known_hosts": None}},
    )
    workspace_known = workspace_dir / ".deploydeck" / "known_hosts"
    target = ["--application-name", "app", "--deployment-group-name", "fleet"]
    v1 = make_revision(tmp_path, "v1")

    first = h.dd(workspace_dir, "create-deployment", *target, "--revision", str(v1), "--wait")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "HostKeyUnknown" in first.stdout
    listed = json.loads(h.dd(workspace_dir, "list-deployments", "--output", "json").stdout)
    shown = h.dd(
        workspace_dir, "get-deployment", "--deployment-id", listed["deployments"][0]["deploymentId"]
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "HostKeyUnknown" in shown.stdout and unknown.fingerprint in shown.stdout
    # OneAtATime: the first instance failed, so nothing else was touched
    for name in order[1:]:
        assert tree_digest(h.site(ssh_fleet.hosts[name])) == {}

    refused = h.dd(workspace_dir, "trust", "i06")
    assert refused.returncode == 1
    assert unknown.fingerprint in refused.stdout and "not recorded" in refused.stdout
    assert (
        not workspace_known.exists() or unknown.known_hosts_line not in workspace_known.read_text()
    )

    trusted = h.dd(workspace_dir, "trust", "i06", "--yes")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert workspace_known.read_text() == unknown.known_hosts_line
    assert unknown.known_hosts_line not in ssh_fleet.known_hosts.read_text()

    second = h.dd(workspace_dir, "create-deployment", *target, "--revision", str(v1), "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    for name in order:
        assert tree_digest(h.site(ssh_fleet.hosts[name])) == tree_digest(v1 / "site")

    # get-deployment names each SSH instance's host and how its connection ended
    listed = json.loads(h.dd(workspace_dir, "list-deployments", "--output", "json").stdout)
    latest = listed["deployments"][0]["deploymentId"]
    shown = h.dd(workspace_dir, "get-deployment", "--deployment-id", latest)
    assert f"root@127.0.0.1:{unknown.port} (closed)" in shown.stdout, shown.stdout
    as_json = json.loads(
        h.dd(workspace_dir, "get-deployment", "--deployment-id", latest, "--output", "json").stdout
    )
    assert {i["connection"] for i in as_json["instances"]} == {"closed"}


async def test_unknown_host_key_shows_its_fingerprint(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    (unknown,) = ssh_fleet.add_hosts(["i06"], trusted=False)
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i06"]))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = final.instance("i06").failed_event().diagnostics
    assert diagnostics.error_code == "HostKeyUnknown"
    assert f"ssh-ed25519 {unknown.fingerprint}" in diagnostics.message
    assert "deploydeck trust" in diagnostics.message
    assert list(unknown.agent_root.iterdir()) == []


async def test_an_unknown_jump_host_is_named_and_trusted_with_its_instance(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """i02 through the jump host i06, whose key nobody recorded: the failure names the jump
    host and the command that fixes it; `trust i02` records the jump host's key, and then
    the deployment goes through."""
    (jump,) = ssh_fleet.add_hosts(["i06"], trusted=False)
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i02"], instances={"i02": {"proxy_jump": f"root@127.0.0.1:{jump.port}"}}
    )
    first = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    diagnostics = first.instance("i02").failed_event().diagnostics
    assert diagnostics.error_code == "HostKeyUnknown"
    assert f"127.0.0.1:{jump.port} (the jump host of i02) is unknown" in diagnostics.message
    assert jump.fingerprint in diagnostics.message
    assert "`deploydeck trust i02`" in diagnostics.message

    trusted = h.dd(workspace_dir, "trust", "i02", "--yes")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "the jump host of i02" in trusted.stdout and "already trusted" in trusted.stdout
    assert f"[127.0.0.1]:{jump.port}" in ssh_fleet.known_hosts.read_text()
    second = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    assert second.status == "Succeeded", second.error_message


@pytest.mark.parametrize("problem", ["missing", "passphrase"])
async def test_an_unusable_key_file_says_what_to_do(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path, problem: str
) -> None:
    key_file = tmp_path / "keys" / "id_ed25519"
    if problem == "passphrase":
        key_file.parent.mkdir()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key_file)], check=True
        )
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i01"], instances={"i01": {"key_file": str(key_file)}}
    )
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    diagnostics = final.instance("i01").failed_event().diagnostics
    assert diagnostics.error_code == "AuthenticationFailed"
    assert str(key_file) in diagnostics.message
    expected = "cannot be read" if problem == "missing" else "ssh-add"
    assert expected in diagnostics.message, diagnostics.message
    states = [
        e.state
        for e in h.journal(h.engine_for(path), final.id)
        if isinstance(e, ev.InstanceConnection)
    ]
    assert states == ["connecting", "failed"]


async def test_trust_asks_for_the_key_type_already_recorded(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host with an ed25519 and an ECDSA key, known by its ECDSA key only: `trust` reads the
    ECDSA key and calls it trusted (not CHANGED), and deployments go through."""
    ecdsa = ssh_fleet.add_host_key("i04", "ecdsa-sha2-nistp256")
    host = ssh_fleet.hosts["i04"]
    public = ecdsa.export_public_key("openssh").decode().split()
    lines = ssh_fleet.known_hosts.read_text().splitlines(keepends=True)
    ssh_fleet.known_hosts.write_text(
        "".join(line for line in lines if line != host.known_hosts_line)
        + f"[127.0.0.1]:{host.port} {public[0]} {public[1]}\n"
    )
    path = ssh_fleet.write_workspace(workspace_dir, ["i04"])
    shown = h.dd(workspace_dir, "trust", "i04")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "already trusted" in shown.stdout and "CHANGED" not in shown.stdout
    assert ecdsa.get_fingerprint("sha256") in shown.stdout
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    assert final.status == "Succeeded", final.error_message


async def test_wrong_client_key_fails_authentication(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger" / "id_ed25519"
    new_key(stranger)
    path = ssh_fleet.write_workspace(workspace_dir, instances={"i03": {"key_file": str(stranger)}})
    engine = h.engine_for(path)
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Succeeded"
    diagnostics = final.instance("i03").failed_event().diagnostics
    assert diagnostics.error_code == "AuthenticationFailed"
    assert "refused the login as root" in diagnostics.message
    assert {i.name for i in final.instances if i.status == "Failed"} == {"i03"}


async def test_host_without_python3(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "bin-without-python"
    empty.mkdir()
    ssh_fleet.add_hosts(["i06"], set_env={"PATH": str(empty)})
    probe = await ssh_fleet.run("i06", "command -v python3")
    assert probe.exit_status != 0 and not probe.stdout  # the session really cannot find it
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i06"]))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = final.instance("i06").failed_event().diagnostics
    assert diagnostics.error_code == "PythonMissing"
    assert "python3 is not installed" in diagnostics.message
    assert "the deploydeck agent needs it" in diagnostics.message


@pytest.mark.parametrize(
    ("down", "status", "batches"),
    [
        (["i06"], "Succeeded", [("i06", "i01"), ("i02",), ("i03",), ("i04",)]),
        (["i06", "i07"], "Failed", [("i06", "i07")]),
    ],
)
async def test_unreachable_hosts_fail_fast_and_count_against_minimum_healthy(
    ssh_fleet: SshFleet,
    workspace_dir: Path,
    tmp_path: Path,
    down: list[str],
    status: str,
    batches: list[tuple[str, ...]],
) -> None:
    for name in down:
        ssh_fleet.add_unreachable(name)
    order = [*down, *h.names(ssh_fleet, exclude=down)][:5]
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, order, config=HALF))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == status, final.error_message
    assert h.batches_of(engine, final.id) == batches
    journal = h.journal(engine, final.id)
    for name in down:
        failed = final.instance(name).failed_event()
        assert failed.name == "ApplicationStop"
        assert failed.diagnostics.error_code == "HostUnreachable"
        assert "is unreachable" in failed.diagnostics.message
        started = next(
            e.time
            for e in journal
            if isinstance(e, ev.InstanceStatusChanged) and e.instance == name
        )
        took = finished(engine, final.id, name, "ApplicationStop").time - started
        print(f"{name} unreachable: failed after {took:.3f} s")
        assert took < CONNECT_TIMEOUT
    if status == "Failed":
        assert final.error_code == "HEALTH_CONSTRAINTS"
        skipped = {i.name for i in final.instances if i.status == "Skipped"}
        assert skipped == set(order) - set(down)
    else:
        assert {i.name for i in final.instances if i.status == "Succeeded"} == set(order[1:])
