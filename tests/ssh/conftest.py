"""Fixtures of the SSH suite: a real OpenSSH fleet on loopback (see tests/ssh/sshd.py).

`ssh_fleet` starts five sshd processes, i01 to i05, each with its own port, host key, config
and folders, all recorded in the fleet's known_hosts, and kills them (and whatever their
sessions left) at teardown. A missing sshd fails the tests: they never skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.ssh import helpers
from tests.ssh.sshd import SSHD, SshdError, SshFleet

HOSTS = ("i01", "i02", "i03", "i04", "i05")


def new_fleet(root: Path) -> SshFleet:
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is not installed; run ./scripts/test, which installs openssh-server")
    try:
        return SshFleet(root)
    except SshdError as error:
        pytest.fail(str(error))


@pytest.fixture
def ssh_fleet(world_readable_tmp: Path) -> Iterator[SshFleet]:
    """Five running sshd hosts, trusted in the fleet's known_hosts."""
    fleet = new_fleet(world_readable_tmp / "ssh")
    try:
        fleet.add_hosts(HOSTS)
        yield fleet
    finally:
        fleet.shutdown()


@pytest.fixture
def workspace_dir(world_readable_tmp: Path) -> Path:
    folder = world_readable_tmp / "workspace"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
async def _close_engines() -> AsyncIterator[None]:
    yield
    await helpers.close_engines()
