"""`deploydeck local` as a user runs it: the real program, real samples, real HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.command_line import DEPLOYDECK, REPO
from tests.conftest import sigint_as_at_a_terminal
from tests.host.harness import pid_alive, write_tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DEPLOYDECK, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def user_env(tmp_path: Path) -> dict:
    return dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), WEB_PORT=str(free_port()))


def get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode().strip()


def reset_sample_site() -> None:
    """Stop the sample's server and remove what it installed under /tmp/deploydeck-web."""
    pidfile = Path("/tmp/deploydeck-web/run/server.pid")
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree("/tmp/deploydeck-web", ignore_errors=True)


def test_help_exits_zero() -> None:
    done = run("local", "--help")
    assert done.returncode == 0
    assert "--bundle-location" in done.stdout and "--agent-configuration-file" in done.stdout


@pytest.mark.xdist_group("web-sample")
def test_web_v1_then_v2_then_broken(user_env: dict) -> None:
    """The issue's done-when, as a user would run it from the README."""
    port = user_env["WEB_PORT"]
    reset_sample_site()
    try:
        v1 = run("local", "-l", "sample_revisions/web-v1", env=user_env)
        assert v1.returncode == 0, v1.stdout + v1.stderr
        assert "local deployment succeeded" in v1.stdout
        assert get(f"http://127.0.0.1:{port}/version.txt") == "v1"

        v2 = run("local", "-l", "sample_revisions/web-v2", env=user_env)
        assert v2.returncode == 0, v2.stdout + v2.stderr
        out = v2.stdout
        # web-v1's ApplicationStop stops its server before web-v2 is downloaded and installed
        assert (
            out.index("stopped web server") < out.index("DownloadBundle") < out.index("✔ Install")
        )
        assert get(f"http://127.0.0.1:{port}/version.txt") == "v2"
        assert Path("/tmp/deploydeck-web/site/changelog.html").exists()

        broken = run("local", "-l", "sample_revisions/web-broken", env=user_env)
        assert broken.returncode == 1
        out = broken.stdout
        assert "failed in ValidateService" in out
        assert "scripts/validate_service.sh" in out and "ScriptFailed, exit code 1" in out
        assert "answered 404" in out  # the last lines of output
        log = out.split("Script log: ")[1].strip()
        assert Path(log).is_file() and "answered 404" in Path(log).read_text()
        assert "Traceback" not in out + broken.stderr
    finally:
        reset_sample_site()


def test_invalid_appspec_is_a_list_of_errors(tmp_path: Path, user_env: dict) -> None:
    revision = write_tree(
        tmp_path / "bad",
        {
            "appspec.yml": "version: '0.0'\nos: linux\nhooks:\n  ApplicationStart:\n    - timeout: 5\n"
        },
    )
    done = run("local", "-l", str(revision), env=user_env)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "appspec.yml:1:" in done.stdout and "appspec.yml:5:" in done.stdout
    assert not Path(user_env["XDG_DATA_HOME"]).exists()  # nothing was written


def test_unknown_hook_event_fails_before_anything_runs(tmp_path: Path, user_env: dict) -> None:
    revision = write_tree(
        tmp_path / "r",
        {
            "appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AplicationStart:\n    - location: s.sh\n",
            "s.sh": "#!/bin/sh\ntouch ran\n",
        },
    )
    done = run("local", "-l", str(revision), env=user_env)
    assert done.returncode == 1
    assert (
        "AplicationStart" in done.stdout and "ApplicationStart" in done.stdout
    )  # warning suggests it
    assert not Path(user_env["XDG_DATA_HOME"]).exists()


def test_custom_event_named_with_events(tmp_path: Path, user_env: dict) -> None:
    revision = write_tree(
        tmp_path / "r",
        {
            "appspec.yml": "version: 0.0\nos: linux\nhooks:\n  SmokeTest:\n    - location: s.sh\n",
            "s.sh": "#!/bin/sh\necho smoke $LIFECYCLE_EVENT\n",
        },
    )
    done = run("local", "-l", str(revision), "-e", "SmokeTest", env=user_env)
    assert done.returncode == 0, done.stdout
    assert "smoke SmokeTest" in done.stdout


def test_malicious_archive_is_refused(tmp_path: Path, user_env: dict) -> None:
    bundle = tmp_path / "evil.tgz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(
            write_tree(tmp_path / "ok", {"appspec.yml": "version: 0.0\nos: linux\n"})
            / "appspec.yml",
            "appspec.yml",
        )
        tar.add(payload, "../../escaped.txt")
    done = run("local", "-l", str(bundle), "-t", "tgz", env=user_env)
    assert done.returncode == 1
    assert "escaped.txt" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_archive_bundle_and_config_file(tmp_path: Path, user_env: dict) -> None:
    source = write_tree(
        tmp_path / "src" / "app",
        {
            "appspec.yml": f"version: 0.0\nos: linux\nfiles:\n  - source: f.txt\n    destination: {tmp_path / 'dest'}\n",
            "f.txt": "hello",
        },
    )
    bundle = tmp_path / "app.tar"
    with tarfile.open(bundle, "w") as tar:
        tar.add(source, "app")
    config = tmp_path / "codedeployagent.yml"
    config.write_text(f":root_dir: '{tmp_path / 'root'}'\n:max_revisions: 2\n")
    for _ in range(3):
        done = run(
            "local", "-l", str(bundle), "-t", "tar", "-c", str(config), "-g", "grp", env=user_env
        )
        assert done.returncode == 0, done.stdout
    assert (tmp_path / "dest" / "f.txt").read_text() == "hello"
    assert f"Deployment root: {tmp_path / 'root'} (from {config})" in done.stdout
    assert len(list((tmp_path / "root" / "grp").iterdir())) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_or_a_kill_ends_the_running_hook(tmp_path: Path, user_env: dict, sig) -> None:
    revision = write_tree(
        tmp_path / "r",
        {
            "appspec.yml": "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: hang.sh\n",
            "hang.sh": f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child.pid\necho hanging\nwait\n",
        },
    )
    proc = subprocess.Popen(
        [*DEPLOYDECK, "local", "-l", str(revision)],
        cwd=REPO,
        env=user_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_at_a_terminal,
    )
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Interrupted during BeforeInstall" in out and "Traceback" not in out
    assert not pid_alive(int(pid_file.read_text()))


def test_failure_in_previous_revision_stop_names_it(tmp_path: Path, user_env: dict) -> None:
    spec = "version: 0.0\nos: linux\nhooks:\n  ApplicationStop:\n    - location: stop.sh\n"
    first = write_tree(
        tmp_path / "one",
        {"appspec.yml": spec, "stop.sh": "#!/bin/sh\necho cannot stop >&2\nexit 7\n"},
    )
    second = write_tree(tmp_path / "two", {"appspec.yml": spec, "stop.sh": "#!/bin/sh\nexit 0\n"})
    assert run("local", "-l", str(first), env=user_env).returncode == 0
    done = run("local", "-l", str(second), env=user_env)
    assert done.returncode == 1
    assert "failed in ApplicationStop" in done.stdout and "exit code 7" in done.stdout
    assert (
        "from the last_successful revision" in done.stdout
        and str(tmp_path / "one") not in done.stdout
    )
    assert "cannot stop" in done.stdout


def test_a_group_id_outside_the_root_is_refused_and_nothing_is_touched(tmp_path: Path) -> None:
    """`-g ..` would make the old-revision cleanup delete the root's siblings: refused first."""
    root = tmp_path / "root"
    sibling = tmp_path / "precious"
    sibling.mkdir()
    (sibling / "data.txt").write_text("keep me\n")
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {root}\n:max_revisions: 1\n")
    done = run(
        "local", "-l", str(REPO / "sample_revisions" / "web-v1"), "-c", str(config), "-g", ".."
    )
    assert done.returncode == 1
    assert "--deployment-group '..' is not a plain folder name" in done.stdout + done.stderr
    assert (sibling / "data.txt").read_text() == "keep me\n"
    assert not root.exists()


def test_log_dir_gets_codedeploy_local_log(tmp_path: Path) -> None:
    revision = tmp_path / "rev"
    (revision / "scripts").mkdir(parents=True)
    (revision / "appspec.yml").write_text(
        "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: scripts/hi.sh\n"
    )
    (revision / "scripts" / "hi.sh").write_text("#!/bin/sh\necho hi\n")
    (revision / "scripts" / "hi.sh").chmod(0o755)
    config = tmp_path / "agent.yml"
    logs = tmp_path / "logs" / "nested"
    config.write_text(f":root_dir: {tmp_path / 'root'}\n:log_dir: {logs}\n")
    done = run("local", "-l", str(revision), "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (logs / "codedeploy-local.log").read_text().splitlines()
    assert "INFO [codedeploy-local(" in lines[0] and "starting" in lines[0]
    assert any(line.endswith("]: BeforeInstall succeeded") for line in lines)
    assert "succeeded; scripts log: " in lines[-1]
    assert (logs / "codedeploy-local.log").stat().st_mode & 0o777 == 0o600
    assert logs.stat().st_mode & 0o777 == 0o700


def test_max_bundle_size_refuses_a_larger_revision(tmp_path: Path) -> None:
    revision = tmp_path / "rev"
    revision.mkdir()
    (revision / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    (revision / "big.bin").write_bytes(b"x" * 300_000)
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {tmp_path / 'root'}\n")
    refused = run("local", "-l", str(revision), "-c", str(config), "--max-bundle-size", "200K")
    assert refused.returncode == 1
    assert "ERROR:" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr
    assert not (tmp_path / "root").exists()  # nothing written
    accepted = run("local", "-l", str(revision), "-c", str(config), "--max-bundle-size", "1M")
    assert accepted.returncode == 0, accepted.stdout
    bad = run("local", "-l", str(revision), "--max-bundle-size", "lots")
    assert bad.returncode == 2 and "'lots' is not a size" in bad.stderr
