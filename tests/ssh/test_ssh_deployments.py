"""Deployments to a real OpenSSH fleet (five sshd on loopback) through the engine's facade."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

import pytest

from engine import events as ev
from engine.configs import get_config, plan_deployment
from engine.deployments.fleet import group_id
from tests.conftest import require_tool
from tests.engine.fleet import EVENTS, live_pids, make_revision, tree_digest
from tests.ssh import helpers as h
from tests.ssh.sshd import SshFleet, remote_alive

pytestmark = pytest.mark.ssh

TEST_USER = "deploydeck-test"


@pytest.mark.parametrize(
    "config",
    [
        "CodeDeployDefault.AllAtOnce",
        "CodeDeployDefault.HalfAtATime",
        "CodeDeployDefault.OneAtATime",
    ],
)
async def test_predefined_configs_deploy_to_every_host(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path, config: str
) -> None:
    path = ssh_fleet.write_workspace(
        workspace_dir, config=config, env={n: {"HOOK_SLEEP": "0.2"} for n in ssh_fleet.hosts}
    )
    engine = h.engine_for(path)
    revision = make_revision(tmp_path, "v1")
    async with h.sampling_connections(ssh_fleet) as samples:
        final = await h.deploy(engine, revision)
    seen = samples.per_host
    assert final.status == "Succeeded", final.error_message
    names = list(ssh_fleet.hosts)
    found = get_config(config)
    assert found is not None
    assert h.batches_of(engine, final.id) == list(plan_deployment(found, names).batches)
    # one connection per host for the whole deployment: opened once, never two at a time
    assert h.connecting(engine, final.id) == {n: 1 for n in names}
    assert seen == {n: 1 for n in names}
    expected = tree_digest(revision / "site")
    for name, host in ssh_fleet.hosts.items():
        instance = final.instance(name)
        assert instance.status == "Succeeded"
        assert [e.status for e in instance.events] == ["Succeeded"] * len(instance.events)
        # installed under the host's fs_root, archived under its agent_root
        assert tree_digest(h.site(host)) == expected
        assert (
            host.agent_root / group_id("app", "fleet") / final.id / "deployment-archive"
        ).is_dir()
        # the bundle went to this host once, into its own cache
        assert len(list((host.home / ".deploydeck" / "bundles").glob("*.tar"))) == 1
        lines = h.hook_lines(engine, final.id, name)
        assert lines == [f"{e} on {name} (v1)" for e in EVENTS if e != "ApplicationStop"]
    # every connection is closed once the deployment has ended
    await h.wait_for(
        lambda: all(host.connections() == 0 for host in ssh_fleet.hosts.values()),
        what="the deployment's connections to close",
    )


async def test_hook_output_arrives_while_the_hook_runs(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """Each ApplicationStart hook prints a line, then waits for a file only the test creates
    once that line has arrived as an event from every host: output is streamed, not sent at
    the end."""
    go = tmp_path / "go"
    waiting = (
        '#!/bin/sh\necho "waiting on $INSTANCE_NAME"\n'
        f'while [ ! -e "{go}" ]; do sleep 0.05; done\necho "released $INSTANCE_NAME"\n'
    )
    revision = h.write_revision(
        tmp_path, "v1", {"ApplicationStart": waiting}, options={"ApplicationStart": {"timeout": 90}}
    )
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir))
    created = await engine.create_deployment(h.request(revision))
    arrived: set[str] = set()
    async for entry in engine.events(created.id):
        event = entry.event
        if isinstance(event, ev.HookOutput) and event.line.startswith("waiting on "):
            assert event.event == "ApplicationStart" and event.stream == "stdout"
            arrived.add(event.instance)
            current = engine.get_deployment(created.id).instance(event.instance)
            assert {e.name: e.status for e in current.events}["ApplicationStart"] == "InProgress"
            if arrived == set(ssh_fleet.hosts):
                go.touch()
                break
    final = await engine.wait(created.id, timeout=120)
    assert final.status == "Succeeded", final.error_message
    for name in ssh_fleet.hosts:
        assert h.hook_lines(engine, final.id, name) == [f"waiting on {name}", f"released {name}"]


async def test_hook_timeout_ends_the_hook_on_the_host(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    path = ssh_fleet.write_workspace(workspace_dir, env={"i01": {"HANG_ON": "BeforeInstall"}})
    engine = h.engine_for(path)
    revision = h.with_timeout(make_revision(tmp_path, "v1"), "BeforeInstall", 2)
    final = await h.deploy(engine, revision)
    assert final.status == "Succeeded", final.error_message  # AllAtOnce: the others succeed
    failed = final.instance("i01").failed_event()
    assert failed.name == "BeforeInstall"
    assert failed.diagnostics.error_code == "ScriptTimedOut"
    assert "did not complete within 2 seconds" in failed.diagnostics.message
    assert {i.name for i in final.instances if i.status == "Succeeded"} == {
        "i02",
        "i03",
        "i04",
        "i05",
    }
    hung = h.pids_in(workspace_dir / "pids.txt")
    assert len(hung) == 2  # the hook's shell and its `sleep 300`
    # asked on the host itself, over SSH: nothing of the hook is left
    assert await remote_alive(ssh_fleet, "i01", hung) == []
    assert live_pids(workspace_dir / "pids.txt") == []


async def test_stop_during_a_remote_hook_then_rollback(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    v1 = make_revision(tmp_path, "v1", {"index.html": "one", "keep.txt": "same"})
    v2 = make_revision(tmp_path, "v2", {"index.html": "two", "keep.txt": "same", "new.txt": "2"})
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir))
    first = await h.deploy(engine, v1)
    assert first.status == "Succeeded", first.error_message
    before = {n: tree_digest(h.site(host)) for n, host in ssh_fleet.hosts.items()}
    assert before["i02"] == tree_digest(v1 / "site")

    path = ssh_fleet.write_workspace(workspace_dir, env={"i02": {"HANG_ON": "AfterInstall@v2"}})
    engine = h.engine_for(path)
    created = await engine.create_deployment(h.request(v2))
    pid_file = workspace_dir / "pids.txt"
    await h.wait_for(lambda: len(live_pids(pid_file)) == 2, what="i02's AfterInstall to hang")
    hung = live_pids(pid_file)
    assert sorted(await remote_alive(ssh_fleet, "i02", hung)) == sorted(hung)
    await engine.stop_deployment(created.id, auto_rollback=True)
    stopped = await engine.wait(created.id, timeout=60)
    assert stopped.status == "Stopped" and stopped.error_code == "MANUAL_STOP"
    hung_event = {e.name: e for e in stopped.instance("i02").events}
    assert hung_event["AfterInstall"].status == "Failed"
    assert hung_event["ApplicationStart"].status == "Skipped"
    assert await remote_alive(ssh_fleet, "i02", hung) == []

    rollback_id = await h.wait_for(
        lambda: engine.get_deployment(created.id).rollback.rollback_deployment_id,
        what="the rollback deployment",
    )
    rollback = await engine.wait(str(rollback_id), timeout=180)
    assert rollback.status == "Succeeded", rollback.error_message
    assert rollback.revision.sha256 == first.revision.sha256
    assert {i.name for i in rollback.instances} == set(ssh_fleet.hosts)  # all were touched
    after = {n: tree_digest(h.site(host)) for n, host in ssh_fleet.hosts.items()}
    assert after == before
    assert not (h.site(ssh_fleet.hosts["i01"]) / "new.txt").exists()


def ensure_user(name: str) -> None:
    """A local user for runas (created once; another test worker may race us to it)."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    created = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/bin/sh", name], capture_output=True
    )
    try:
        pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"cannot create the user {name}: {created.stderr.decode()}")


async def test_runas_and_sudo_over_ssh(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    require_tool("sudo")
    require_tool("su")
    require_tool("useradd")
    ensure_user(TEST_USER)
    out = workspace_dir / "out"
    out.mkdir()
    out.chmod(0o1777)
    who = f'#!/bin/sh\necho "$(id -un) $LIFECYCLE_EVENT $INSTANCE_NAME" >> "{out}/$INSTANCE_NAME"\n'
    revision = h.write_revision(
        tmp_path,
        "v1",
        {"BeforeInstall": who, "AfterInstall": who, "ApplicationStart": who},
        options={
            "BeforeInstall": {"runas": TEST_USER},
            "AfterInstall": {"sudo": True},
            "ApplicationStart": {"runas": TEST_USER, "sudo": True},
        },
    )
    names = ["i01", "i02"]
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, names))
    final = await h.deploy(engine, revision)
    assert final.status == "Succeeded", [
        i.failed_event().diagnostics for i in final.instances if i.status != "Succeeded"
    ]
    for name in names:
        assert (out / name).read_text().splitlines() == [
            f"{TEST_USER} BeforeInstall {name}",
            f"root AfterInstall {name}",  # sudo keeps the instance's variables
            f"{TEST_USER} ApplicationStart {name}",
        ]


async def test_through_a_jump_host(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """i02 reached through i01 (`proxy_jump`): the deployment holds a connection to the jump
    host while it works on i02, and i02 gets the revision."""
    jump = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(
        workspace_dir,
        ["i02"],
        env={"i02": {"HOOK_SLEEP": "0.3"}},
        instances={"i02": {"proxy_jump": f"root@127.0.0.1:{jump.port}"}},
    )
    engine = h.engine_for(path)
    async with h.sampling_connections(ssh_fleet) as samples:
        final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    seen = samples.per_host
    assert final.status == "Succeeded", final.error_message
    assert seen["i01"] == 1 and seen["i02"] == 1
    assert {n for n, count in seen.items() if count} == {"i01", "i02"}
    assert tree_digest(h.site(ssh_fleet.hosts["i02"])) == tree_digest(tmp_path / "v1" / "site")
    assert tree_digest(h.site(jump)) == {}


async def test_ssh_max_parallel_limits_hosts_worked_on_at_once(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """AllAtOnce on five hosts with `ssh_max_parallel: 2`: never more than two hosts are
    connected at once, each host's lifecycle runs in one go, and its connection is let go
    (state `closed`) when its turn ends."""
    path = ssh_fleet.write_workspace(
        workspace_dir,
        env={n: {"HOOK_SLEEP": "0.2"} for n in ssh_fleet.hosts},
        settings={"ssh_max_parallel": 2},
    )
    engine = h.engine_for(path)
    async with h.sampling_connections(ssh_fleet) as samples:
        final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Succeeded", final.error_message
    assert samples.most_hosts == 2
    journal = h.journal(engine, final.id)
    spans = {}
    for event in journal:
        if isinstance(event, ev.LifecycleEventStarted | ev.LifecycleEventFinished):
            spans.setdefault(event.instance, []).append(event.time)
    # hosts' turns (first event's start to last event's end): never more than two at a time
    turns = [(t[0], t[-1]) for t in spans.values()]
    for start, _ in turns:
        assert sum(1 for s, e in turns if s <= start < e) <= 2, turns
    states = {
        name: [
            e.state for e in journal if isinstance(e, ev.InstanceConnection) and e.instance == name
        ]
        for name in ssh_fleet.hosts
    }
    assert set(map(tuple, states.values())) == {("connecting", "connected", "closed")}
    assert all(host.connections() == 0 for host in ssh_fleet.hosts.values())
