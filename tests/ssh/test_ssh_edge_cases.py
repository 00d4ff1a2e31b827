"""Edge cases of the SSH transport: instances sharing one host, huge output lines, a host that
cannot be prepared. Each was a bug once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine import events as ev
from tests.engine.fleet import make_revision, tree_digest
from tests.ssh import helpers as h
from tests.ssh.sshd import SshFleet

pytestmark = pytest.mark.ssh


async def test_instances_sharing_one_host_all_succeed(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """Five instances on the host i01, each with its own agent_root and fs_root (what fs_root
    is for), deployed at once. Three rounds, each with an empty cache on the host."""
    shared = ssh_fleet.hosts["i01"]
    instances = {
        name: {
            "port": shared.port,
            "agent_root": str(tmp_path / name / "agent"),
            "fs_root": str(tmp_path / name / "fs"),
        }
        for name in ssh_fleet.hosts
    }
    path = ssh_fleet.write_workspace(workspace_dir, instances=instances)
    problems = []
    for round_ in range(3):
        shutil.rmtree(shared.home / ".deploydeck", ignore_errors=True)
        engine = h.engine_for(path)
        final = await h.deploy(engine, make_revision(tmp_path / f"round{round_}", "v1"))
        problems += [
            f"round {round_} {i.name}: {i.failed_event().diagnostics}"
            for i in final.instances
            if i.status != "Succeeded"
        ]
    assert problems == []
    for name in ssh_fleet.hosts:
        assert tree_digest(tmp_path / name / "fs" / "srv" / "app") != {}


async def test_a_hook_output_line_longer_than_the_ssh_window(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    long_line = "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' x\necho\necho done\n"
    revision = h.write_revision(tmp_path, "v1", {"AfterInstall": long_line})
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i01"]))
    final = await h.deploy(engine, revision)
    failed = final.instance("i01").failed_event()
    assert final.status == "Succeeded", failed and failed.diagnostics
    lengths = [
        len(e.line)
        for e in h.journal(engine, final.id)
        if isinstance(e, ev.HookOutput) and e.event == "AfterInstall"
    ]
    # the engine gets the line cut to 64 KiB with a note; the host's scripts.log keeps it whole
    assert lengths == [64 * 1024 + len("... [2934465 more characters in scripts.log]\n"), 5]


async def test_an_unusable_agent_cache_is_not_a_lost_connection(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    ssh_fleet.add_hosts(["i06"], set_env={"HOME": str(not_a_folder / "home")})
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i06"]))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = final.instance("i06").failed_event().diagnostics
    assert diagnostics.error_code != "ConnectionLost", diagnostics.message
    assert str(not_a_folder / "home" / ".deploydeck") in diagnostics.message
