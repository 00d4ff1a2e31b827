"""The loaded workspace: lookups, config resolution, instances, paths and settings."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from engine.workspace import Settings, WorkspaceError
from tests.workspace.support import load

TEXT = """
settings:
  max_revisions: 3
  kill_grace_seconds: 2.5
applications:
  web:
    deployment_groups:
      fleet:
        deployment_config: CodeDeployDefault.HalfAtATime
        tag_filters: [{key: role, value: web}]
      plain:
        tag_filters: [{key: role}]
  fn:
    compute_platform: Lambda
    deployment_groups:
      live:
        deployment_config: Canary20
      default: {}
  svc:
    compute_platform: ECS
    deployment_groups:
      blue: {}
instances:
  web-1:
    tags: {role: web}
    root: /srv/web-1
  web-2:
    tags: {role: web}
    root: ../elsewhere/web-2
  db-1:
    tags: {role: db}
    transport: ssh
    host: db.internal
deployment_configs:
  Ninety:
    minimum_healthy_hosts: {type: FLEET_PERCENT, value: 90}
  Canary20:
    compute_platform: Lambda
    traffic_routing: {type: TimeBasedCanary, percentage: 20, interval_minutes: 5}
"""


@pytest.fixture
def ws(tmp_path: Path):
    folder = tmp_path / "project"
    folder.mkdir()
    result = load(folder, TEXT)
    assert result.ok and result.diagnostics == (), [str(d) for d in result.diagnostics]
    return result.unwrap()


def test_resolve_config_prefers_the_deployment_then_the_group_then_the_default(ws) -> None:
    fleet, plain = ws.group("web", "fleet"), ws.group("web", "plain")
    assert ws.resolve_config("Ninety", fleet).name == "Ninety"
    assert ws.resolve_config("CodeDeployDefault.AllAtOnce", fleet).predefined
    assert ws.resolve_config(None, fleet).name == "CodeDeployDefault.HalfAtATime"
    assert ws.resolve_config(None, plain).name == "CodeDeployDefault.OneAtATime"
    assert ws.resolve_config(None, ws.group("fn", "live")).name == "Canary20"
    assert ws.resolve_config(None, ws.group("fn", "default")).name == (
        "CodeDeployDefault.LambdaAllAtOnce"
    )
    assert ws.resolve_config(None, ws.group("svc", "blue")).name == "CodeDeployDefault.ECSAllAtOnce"
    assert set(ws.configs) == {"Ninety", "Canary20"}


def test_resolve_config_checks_the_platform_and_the_name(ws) -> None:
    with pytest.raises(
        WorkspaceError,
        match=r"Canary20 is a Lambda deployment config, but "
        r"deployment group web/fleet deploys to Server",
    ):
        ws.resolve_config("Canary20", ws.group("web", "fleet"))
    with pytest.raises(WorkspaceError, match=r"CodeDeployDefault\.OneAtATime is a Server"):
        ws.resolve_config("CodeDeployDefault.OneAtATime", ws.group("fn", "live"))
    with pytest.raises(WorkspaceError, match="did you mean Ninety") as raised:
        ws.resolve_config("Ninty", ws.group("web", "fleet"))
    assert "CodeDeployDefault.HalfAtATime" in str(raised.value)  # lists the Server configs


def test_lookups_name_the_valid_choices(ws) -> None:
    with pytest.raises(
        WorkspaceError,
        match=r"no application 'wbe'; did you mean 'web'\? "
        r"applications: web, fn, svc",
    ):
        ws.group("wbe", "fleet")
    with pytest.raises(
        WorkspaceError,
        match=r"application 'web' has no deployment group "
        r"'flet'; did you mean 'fleet'\? deployment groups: fleet, plain",
    ):
        ws.group_instances("web", "flet")
    with pytest.raises(WorkspaceError, match="deployment groups: fleet, plain"):
        ws.group("web", "zzz")


def test_group_instances_in_workspace_order(ws) -> None:
    assert [i.name for i in ws.group_instances("web", "fleet")] == ["web-1", "web-2"]
    assert [i.name for i in ws.group_instances("web", "plain")] == ["web-1", "web-2", "db-1"]
    assert ws.group_instances("fn", "live") == ()


def test_paths_are_relative_to_the_workspace_folder(ws, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    assert ws.path == folder / "deploydeck.yml" and ws.folder == folder
    assert ws.state_dir == folder / ".deploydeck"
    assert ws.instances["web-1"].root == Path("/srv/web-1")
    assert ws.instances["web-2"].root == tmp_path / "elsewhere" / "web-2"


def test_ssh_defaults(ws) -> None:
    db = ws.instances["db-1"]
    assert db.transport == "ssh" and db.root is None and db.ssh is not None
    assert (db.ssh.port, db.ssh.user, db.ssh.python) == (22, getpass.getuser(), "python3")
    assert db.ssh.key_file is None and db.ssh.proxy_jump is None and db.ssh.agent_root is None
    assert db.ssh.known_hosts is None and db.ssh.fs_root is None


def test_host_keys_are_checked_against_the_workspace_and_user_files(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ws = load(tmp_path, "instances:\n  db: {transport: ssh, host: db, user: me}\n").unwrap()
    ssh = ws.instances["db"].ssh
    assert ssh.known_hosts_files(ws.state_dir) == ()
    (tmp_path / ".deploydeck").mkdir()
    (tmp_path / ".deploydeck" / "known_hosts").write_text("")
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "known_hosts").write_text("")
    assert ssh.known_hosts_files(ws.state_dir) == (
        tmp_path / ".deploydeck" / "known_hosts",
        tmp_path / "home" / ".ssh" / "known_hosts",
    )
    own = load(tmp_path, "instances:\n  db: {transport: ssh, host: db, known_hosts: kh}\n").unwrap()
    assert own.instances["db"].ssh.known_hosts_files(own.state_dir) == (tmp_path / "kh",)


def test_settings_and_their_defaults(ws, tmp_path: Path) -> None:
    assert ws.settings == Settings(max_revisions=3, kill_grace_seconds=2.5, ssh_max_parallel=20)
    bare = load(tmp_path, "instances:\n  a: {}\n").unwrap()
    assert bare.settings == Settings(5, 10.0, 20)


def test_a_local_instance_defaults(tmp_path: Path) -> None:
    ws = load(tmp_path, "instances:\n  a:\n").unwrap()
    a = ws.instances["a"]
    assert (a.tags, a.transport, a.environment, a.ssh) == ({}, "local", {}, None)
    assert a.root == tmp_path / ".deploydeck" / "instances" / "a"


def test_environment_numbers_are_kept_as_written(tmp_path: Path) -> None:
    text = "instances:\n  a:\n    environment: {PORT: 8081, MODE: 0644, RATIO: 1.50, S: x}\n"
    env = load(tmp_path, text).unwrap().instances["a"].hook_environment()
    assert env == {"PORT": "8081", "MODE": "0644", "RATIO": "1.50", "S": "x"}


def test_everything_is_frozen(ws) -> None:
    import dataclasses

    for value in (ws, ws.group("web", "fleet"), ws.instances["db-1"], ws.instances["db-1"].ssh):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.name = "x"  # type: ignore[misc]
