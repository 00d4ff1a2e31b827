"""Fault matrix: secrets and file modes on the controller and on SSH hosts, host keys, hosts
without SFTP, and terminal escape sequences in hook output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ssh import helpers as h
from tests.ssh.sshd import SSHD, SshdError, SshFleet


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
