"""Fault matrix: SSH hosts that are broken, impostors or tampered with, on the real OpenSSH
fleet of tests/ssh. Dead hosts, unknown and changed host keys, a host without python3 and
byte-flipped cached copies are in tests/ssh/test_ssh_failures.py and test_ssh_host_setup.py;
these add the cases around them. Each failing instance fails with an error code and a message
naming the host and what to do, and the other instances are not held up."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import events as ev
from engine.targets.ssh_connection import CONNECT_TIMEOUT
from tests.engine.fleet import make_revision, tree_digest
from tests.ssh import conftest as ssh_suite
from tests.ssh import helpers as h
from tests.ssh.sshd import SshFleet

pytestmark = pytest.mark.ssh

# The SSH suite's fixtures (a five-host sshd fleet, a workspace folder, engines closed after
# each test), bound here so pytest finds them in this folder too.
ssh_fleet = ssh_suite.ssh_fleet
workspace_dir = ssh_suite.workspace_dir
_close_engines = ssh_suite._close_engines


@contextlib.contextmanager
def impostor(greeting: bytes | None) -> Iterator[int]:
    """A loopback port that accepts connections and then says `greeting` and closes, or
    (None) says nothing and holds them open. Yields the port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            if greeting is None:
                held.append(client)
            else:
                with contextlib.suppress(OSError):
                    client.sendall(greeting)
                client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()
        for client in held:
            client.close()


def failure(final, name: str):
    event = final.instance(name).failed_event()
    assert event is not None, f"{name} did not fail"
    return event.diagnostics


async def test_port_that_accepts_and_never_answers(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose port accepts TCP and then stays silent -> HostUnreachable within the connect timeout; the other host deploys."""
    with impostor(None) as port:
        path = ssh_fleet.write_workspace(
            workspace_dir, ["i01", "i02"], instances={"i02": {"port": port}}
        )
        engine = h.engine_for(path)
        started = time.monotonic()
        final = await h.deploy(engine, make_revision(tmp_path, "v1"))
        took = time.monotonic() - started
    diagnostics = failure(final, "i02")
    assert diagnostics.error_code == "HostUnreachable", diagnostics
    assert f"127.0.0.1:{port}" in diagnostics.message
    assert took < CONNECT_TIMEOUT + 30
    assert final.instance("i01").status == "Succeeded"


async def test_port_that_speaks_another_protocol(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose port answers HTTP, not SSH -> the instance fails at connection naming the host; nothing else is held up."""
    with impostor(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        path = ssh_fleet.write_workspace(
            workspace_dir, ["i01", "i02"], instances={"i02": {"port": port}}
        )
        engine = h.engine_for(path)
        final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    diagnostics = failure(final, "i02")
    assert diagnostics.error_code in {"HostUnreachable", "ConnectionFailed"}, diagnostics
    assert f"127.0.0.1:{port}" in diagnostics.message
    assert "Traceback" not in diagnostics.message
    assert final.instance("i01").status == "Succeeded"
    states = [
        e.state
        for e in h.journal(engine, final.id)
        if isinstance(e, ev.InstanceConnection) and e.instance == "i02"
    ]
    assert "connected" not in states


async def test_agent_root_that_is_a_file(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose agent_root is a regular file (a disk path that cannot be written) -> the instance fails naming the path; nothing is installed there."""
    host = ssh_fleet.hosts["i01"]
    blocker = host.home / "not-a-folder"
    blocker.write_text("a file where the deployment root should be\n")
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i01", "i02"], instances={"i01": {"agent_root": str(blocker)}}
    )
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    diagnostics = failure(final, "i01")
    assert diagnostics.error_code != "ConnectionLost", diagnostics
    assert str(blocker) in diagnostics.message, diagnostics.message
    assert blocker.read_text() == "a file where the deployment root should be\n"
    assert tree_digest(h.site(host)) == {}
    assert final.instance("i02").status == "Succeeded"


async def test_fs_root_that_is_a_file(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose fs_root is a regular file -> Install fails naming the path it could not create; the file is untouched."""
    host = ssh_fleet.hosts["i01"]
    blocker = host.home / "fs-is-a-file"
    blocker.write_text("keep\n")
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i01"], instances={"i01": {"fs_root": str(blocker)}}
    )
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    failed = final.instance("i01").failed_event()
    assert failed.name == "Install", failed
    assert str(blocker) in failed.diagnostics.message, failed.diagnostics.message
    assert blocker.read_text() == "keep\n"


async def test_planted_agent_in_the_cache_never_runs(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """The host's cached agent replaced by a working impostor zipapp -> sha256 mismatch, the real agent is sent again; the impostor never runs."""
    host = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(workspace_dir, ["i01"])
    engine = h.engine_for(path)
    revision = make_revision(tmp_path, "v1")
    assert (await h.deploy(engine, revision)).status == "Succeeded"
    (agent,) = (host.home / ".deploydeck" / "agent").glob("*.pyz")
    genuine = agent.read_bytes()
    marker = tmp_path / "impostor-ran"
    with zipfile.ZipFile(agent, "w") as planted:
        planted.writestr(
            "__main__.py", f"open({str(marker)!r}, 'w').write('pwned')\nraise SystemExit(0)\n"
        )
    assert agent.read_bytes() != genuine
    final = await h.deploy(h.engine_for(path), revision)
    assert final.status == "Succeeded", final.error_message
    assert not marker.exists()
    assert agent.read_bytes() == genuine


async def test_cached_bundle_replaced_by_a_symlink(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """The host's cached bundle replaced by a symlink to another file -> the bundle is sent again beside it; the link's target is never written."""
    host = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(workspace_dir, ["i01"])
    revision = make_revision(tmp_path, "v1")
    assert (await h.deploy(h.engine_for(path), revision)).status == "Succeeded"
    (bundle,) = (host.home / ".deploydeck" / "bundles").iterdir()
    size = bundle.stat().st_size
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * size)  # same size: only the sha256 tells them apart
    bundle.unlink()
    bundle.symlink_to(victim)
    final = await h.deploy(h.engine_for(path), revision)
    assert final.status == "Succeeded", final.error_message
    assert victim.read_bytes() == b"v" * size
    assert tree_digest(h.site(host)) == tree_digest(revision / "site")


async def test_known_hosts_file_that_does_not_exist(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """An instance whose known_hosts file is missing -> HostKeyUnknown with the fingerprint; the file is not created with the key."""
    missing = tmp_path / "nowhere" / "known_hosts"
    host = ssh_fleet.hosts["i01"]
    path = ssh_fleet.write_workspace(
        workspace_dir, ["i01"], instances={"i01": {"known_hosts": str(missing)}}
    )
    final = await h.deploy(h.engine_for(path), make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = failure(final, "i01")
    assert diagnostics.error_code == "HostKeyUnknown", diagnostics
    assert host.fingerprint in diagnostics.message
    assert not missing.exists() or host.known_hosts_line not in missing.read_text()
    assert list(host.agent_root.iterdir()) == []


async def test_python3_that_cannot_run(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose python3 is broken (exits 127 with a loader error) -> PythonMissing saying it could not run, with its error."""
    fake = tmp_path / "broken-bin"
    fake.mkdir()
    script = fake / "python3"
    script.write_text(
        "#!/bin/sh\necho 'python3: error while loading shared libraries: libpython3.so' >&2\n"
        "exit 127\n"
    )
    script.chmod(0o755)
    ssh_fleet.add_hosts(["i06"], set_env={"PATH": f"{fake}:/usr/bin:/bin"})
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i06"]))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = failure(final, "i06")
    assert diagnostics.error_code == "PythonMissing", diagnostics
    assert "could not run" in diagnostics.message
    assert "error while loading shared libraries" in diagnostics.message


async def test_python3_that_is_too_old(
    ssh_fleet: SshFleet, workspace_dir: Path, tmp_path: Path
) -> None:
    """A host whose python3 reports 3.6 -> PythonMissing naming the version and the 3.8 it needs; nothing is sent."""
    fake = tmp_path / "old-bin"
    fake.mkdir()
    # a python3 that says it is 3.6.9: the real one, running the probe with version_info replaced
    (fake / "old.py").write_text(
        "import sys\ncode = sys.argv[2]\nsys.argv = ['-c', *sys.argv[3:]]\n"
        "sys.version_info = (3, 6, 9)\nexec(compile(code, '<probe>', 'exec'), {})\n"
    )
    script = fake / "python3"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {fake / "old.py"} "$@"\n')
    script.chmod(0o755)
    (host,) = ssh_fleet.add_hosts(["i06"], set_env={"PATH": f"{fake}:/usr/bin:/bin"})
    engine = h.engine_for(ssh_fleet.write_workspace(workspace_dir, ["i06"]))
    final = await h.deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed"
    diagnostics = failure(final, "i06")
    assert diagnostics.error_code == "PythonMissing", diagnostics
    assert "too old (3.6.9; 3.8 or newer is needed)" in diagnostics.message
    assert not (host.home / ".deploydeck" / "agent").exists()
