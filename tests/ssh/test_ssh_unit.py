"""SSH settings read without a server: the jump host notation."""

from __future__ import annotations

import pytest

from engine.targets.ssh_connection import SshEndpoint, jump_endpoint


@pytest.mark.parametrize(
    ("jump", "host", "port", "user"),
    [
        ("bastion", "bastion", 22, "deploy"),
        ("ops@bastion:2222", "bastion", 2222, "ops"),
        ("[::1]:2200", "::1", 2200, "deploy"),
        ("root@[fe80::1]", "fe80::1", 22, "root"),
        ("10.0.0.1:22", "10.0.0.1", 22, "deploy"),
    ],
)
def test_jump_host_notation(jump: str, host: str, port: int, user: str) -> None:
    endpoint = SshEndpoint("web-1", 22, "deploy", None, jump, (), "web-1")
    found = jump_endpoint(endpoint)
    assert (found.host, found.port, found.user) == (host, port, user)
    assert found.proxy_jump is None
    assert found.described.endswith("(the jump host of web-1)")
