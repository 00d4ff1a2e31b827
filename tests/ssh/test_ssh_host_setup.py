"""Preparing a host, on a real OpenSSH fleet: what the probe reads despite login banners, the
per-host cache (agent and bundles) healing a damaged copy, and `~` in host folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engine.fleet import make_revision, tree_digest
from tests.ssh import helpers as h
from tests.ssh.sshd import SshFleet

pytestmark = pytest.mark.ssh


async def test_a_login_banner_does_not_confuse_the_probe(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    host = ssh_fleet.hosts["i01"]
    (host.home / ".bashrc").write_text('echo "Welcome to i01"\necho "python3 True present"\n')
    try:
        path = ssh_fleet.write_workspace(workspace_dir, ["i01"])
        assert (await ssh_fleet.run("i01", "true")).stdout.startswith("Welcome")  # it is read
        final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    finally:
        (host.home / ".bashrc").unlink()
    assert final.status == "Succeeded", final.error_message


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_damaged_cached_copies_are_sent_again(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """The host's cached agent and bundle are checked by sha256, not by name or size: a
    damaged copy (same size) is replaced, and the deployment succeeds."""
    host = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(workspace_dir, ["i01"])
    engine = h.engine_for(path)
    revision = make_revision(tmp_path, "v1")
    assert (await h.deploy(engine, revision)).status == "Succeeded"
    cache = host.home / ".deploydeck"
    (agent,) = (cache / "agent").glob("*.pyz")
    (bundle,) = (cache / "bundles").iterdir()
    good = {agent: agent.read_bytes(), bundle: bundle.read_bytes()}
    for copy in good:
        flip_a_byte(copy)
    final = await h.deploy(engine, revision)
    assert final.status == "Succeeded", final.error_message
    assert {copy: copy.read_bytes() for copy in good} == good


async def test_tilde_folders_are_in_the_users_home(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    host = ssh_fleet.hosts["i02"]
    path = ssh_fleet.write_workspace(
        workspace_dir,
        ["i02"],
        instances={"i02": {"agent_root": "~/dd-root", "fs_root": "~/dd-fs"}},
    )
    revision = make_revision(tmp_path, "v1")
    final = await h.deploy(h.engine_for(path), revision)
    assert final.status == "Succeeded", final.error_message
    assert (host.home / "dd-root" / "deployment-instructions").is_dir()
    site = host.home / "dd-fs" / "srv" / "app"
    assert tree_digest(site) == tree_digest(revision / "site")
    assert not list(host.home.glob("~*")) and not list(host.agent_root.glob("~*"))


async def test_the_bundle_cache_keeps_the_most_recently_used(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """Old bundles do not pile up on a host: beyond max_revisions (here 3) the least recently
    used go, except any used within the hour (another deployment may be unpacking it)."""
    host = ssh_fleet.hosts["i01"]
    cache = host.home / ".deploydeck" / "bundles"
    cache.mkdir(parents=True)
    day = 24 * 3600
    old = []
    for age in range(1, 6):
        stale = cache / f"{age:064x}.tar"
        stale.write_bytes(b"old")
        os.utime(stale, (time.time() - age * day,) * 2)
        old.append(stale)
    busy = [cache / f"{99 - n:064x}.tar" for n in range(3)]  # more than max_revisions
    for copy in busy:
        copy.write_bytes(b"in use")
    path = ssh_fleet.write_workspace(workspace_dir, ["i01"], settings={"max_revisions": 3})
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    assert final.status == "Succeeded", final.error_message
    left = {p.name for p in cache.iterdir()}
    new = left - {p.name for p in old} - {p.name for p in busy}
    assert len(new) == 1  # this deployment's bundle
    # the old ones go; the ones used within the hour stay, even beyond max_revisions
    assert left == new | {p.name for p in busy}
