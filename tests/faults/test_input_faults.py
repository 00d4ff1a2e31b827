"""Bad input from the user: numbers too long for Python, over-long descriptions. Each is one
clear error naming the file, line and key (or the option), with no traceback, and nothing runs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import yaml

from tests.command_line import dd, register_revision
from tests.engine.fleet import make_revision, write_workspace

HUGE = "9" * 5000  # past Python's 4300-digit limit for int("...")
LONG = "9" * 400  # an int Python makes, too large for a float or a clock


def revision_with_timeout(root: Path, timeout: str) -> Path:
    revision = make_revision(root, "v1")
    appspec = revision / "appspec.yml"
    text = appspec.read_text().replace("timeout: 120", f"timeout: {timeout}", 1)
    appspec.write_text(text)
    return revision


def assert_one_clear_error(output: str, file: Path, key: str) -> None:
    assert "Traceback" not in output and "ValueError" not in output, output
    errors = [line for line in output.splitlines() if ": error: " in line]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"{file}:") and key in errors[0], errors
    assert "3600" in errors[0] and "5000 digits" in errors[0], errors
    assert "sys.set_int_max_str_digits" not in output


def test_validate_timeout_of_5000_digits(tmp_path: Path) -> None:
    """a hook timeout of 5000 digits in validate -> one error with file, line, key and the 3600 s limit"""
    revision = revision_with_timeout(tmp_path, HUGE)
    done = dd(tmp_path, "validate", str(revision))
    assert done.returncode == 1
    assert_one_clear_error(done.stdout + done.stderr, revision / "appspec.yml", "timeout")


def test_validate_json_timeout_of_5000_digits(tmp_path: Path) -> None:
    """a hook timeout of 5000 digits in a JSON appspec -> the same one error, no traceback"""
    appspec = tmp_path / "appspec.json"
    document = {"version": 0.0, "os": "linux", "hooks": {"ApplicationStart": [{"location": "a"}]}}
    appspec.write_text(json.dumps(document).replace('"a"}', f'"a", "timeout": {HUGE}}}'))
    done = dd(tmp_path, "validate", str(appspec))
    assert done.returncode == 1
    assert_one_clear_error(done.stdout + done.stderr, appspec, "timeout")


def test_local_timeout_of_5000_digits(tmp_path: Path) -> None:
    """a hook timeout of 5000 digits in deploydeck local -> the same one error, no event runs"""
    revision = revision_with_timeout(tmp_path, HUGE)
    root = tmp_path / "root"
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {root}\n")
    done = dd(tmp_path, "local", "-l", str(revision), "-c", str(config))
    assert done.returncode == 1
    assert_one_clear_error(done.stdout + done.stderr, revision / "appspec.yml", "timeout")
    assert not (tmp_path / "pids.txt").exists()


def test_plan_and_create_timeout_of_5000_digits(tmp_path: Path) -> None:
    """a hook timeout of 5000 digits in plan and create-deployment -> the same one error, nothing created"""
    revision = revision_with_timeout(tmp_path, HUGE)
    write_workspace(tmp_path, 2)
    target = ["--application-name", "app", "--deployment-group-name", "fleet"]
    for command in ("plan", "create-deployment"):
        done = dd(tmp_path, command, *target, "--revision", str(revision))
        assert done.returncode == 1, done.stdout
        assert_one_clear_error(done.stdout + done.stderr, revision / "appspec.yml", "timeout")
    listing = dd(tmp_path, "list-deployments", "--output", "json")
    assert json.loads(listing.stdout) == {"deployments": []}


def test_timeout_of_400_digits(tmp_path: Path) -> None:
    """a hook timeout of 400 digits (an int, but no clock can use it) -> one error naming the 3600 s limit"""
    revision = revision_with_timeout(tmp_path, LONG)
    done = dd(tmp_path, "validate", str(revision))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "400 digits" in output and "3600" in output


def test_workspace_number_too_long(tmp_path: Path) -> None:
    """settings with numbers of 400 or 5000 digits -> an error naming the file, line and key"""
    for value in (LONG, HUGE):
        workspace = write_workspace(tmp_path, 1)
        document = yaml.safe_load(workspace.read_text())
        workspace.write_text(
            yaml.safe_dump(document).replace(
                "kill_grace_seconds: 1", f"kill_grace_seconds: {value}"
            )
        )
        done = dd(tmp_path, "list-deployments")
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "Traceback" not in output and "OverflowError" not in output, output
        assert f"{workspace}:" in output and "settings.kill_grace_seconds" in output, output


def test_proxy_jump_port_too_long(tmp_path: Path) -> None:
    """an SSH proxy_jump port of 5000 digits -> an error naming the key, no traceback"""
    workspace = write_workspace(tmp_path, 1)
    document = yaml.safe_load(workspace.read_text())
    document["instances"]["web-a"] = {
        "transport": "ssh",
        "host": "192.0.2.10",
        "user": "deploy",
        "proxy_jump": f"bastion:{HUGE}",
    }
    workspace.write_text(yaml.safe_dump(document))
    done = dd(tmp_path, "list-deployments")
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Traceback" not in output and "proxy_jump" in output, output


def test_agent_configuration_number_too_long(tmp_path: Path) -> None:
    """:max_revisions: of 5000 digits in local's -c file -> an error naming the file, no traceback"""
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {tmp_path / 'root'}\n:max_revisions: {HUGE}\n")
    done = dd(tmp_path, "local", "-l", str(make_revision(tmp_path, "v1")), "-c", str(config))
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Traceback" not in output and f"{config}:" in output and "digits" in output, output
    assert len(done.stdout) < 1000  # the value is not echoed back


def test_description_over_256_characters(tmp_path: Path) -> None:
    """a description of 257 characters -> refused with CodeDeploy's 256 limit, nothing created"""
    write_workspace(tmp_path, 1)
    revision = make_revision(tmp_path, "v1")
    target = ["--application-name", "app", "--deployment-group-name", "fleet"]
    done = dd(
        tmp_path,
        "create-deployment",
        *target,
        "--revision",
        str(revision),
        "--description",
        "x" * 257,
    )
    assert done.returncode == 1
    assert "257 characters" in done.stdout and "256" in done.stdout, done.stdout
    assert json.loads(dd(tmp_path, "list-deployments", "--output", "json").stdout) == {
        "deployments": []
    }
    registered = dd(
        tmp_path,
        *register_revision(str(revision)),
        "--description",
        "y" * 300,
    )
    assert registered.returncode == 1 and "300 characters" in registered.stdout
    assert "no revisions yet" in dd(tmp_path, "list-revisions").stdout
    fits = dd(
        tmp_path,
        "create-deployment",
        *target,
        "--revision",
        str(revision),
        "--description",
        "x" * 256,
    )
    assert fits.returncode == 0, fits.stdout + fits.stderr


def test_web_port_already_in_use(tmp_path: Path) -> None:
    """the sample web app's port held by another server -> ApplicationStart fails with the server's 'Address already in use'"""
    assert dd(tmp_path, "init", "--local-instances", "1").returncode == 0
    workspace = tmp_path / "deploydeck.yml"
    port = int(
        yaml.safe_load(workspace.read_text())["instances"]["web-1"]["environment"]["WEB_PORT"]
    )
    sample = Path(__file__).resolve().parents[2] / "sample_revisions" / "web-v1"
    target = ["--application-name", "web", "--deployment-group-name", "fleet"]
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        done = dd(tmp_path, "create-deployment", *target, "--revision", str(sample), "--wait")
    assert done.returncode == 1
    failure = done.stdout[done.stdout.index("✖ web-1") :]
    assert failure.startswith("✖ web-1 ApplicationStart: ScriptFailed, exit code 1"), done.stdout
    assert "Address already in use" in failure and f"127.0.0.1:{port}" in failure
    assert "ValidateService" not in failure
