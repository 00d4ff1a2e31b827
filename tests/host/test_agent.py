"""The agent's lifecycle commands for real: order, environment, previous revision, layout."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from engine.host import agent
from engine.local import DEFAULT_EVENTS
from tests.conftest import require_tool
from tests.host.harness import SERVER_EVENTS, appspec, hook, pid_alive, write_tree

RECORDER = """#!/bin/sh
echo "$LIFECYCLE_EVENT|$DEPLOYMENT_ID|$APPLICATION_NAME|$DEPLOYMENT_GROUP_NAME|$DEPLOYMENT_GROUP_ID|{tag}" >> "{record}"
"""
SCRIPTABLE = [e for e in DEFAULT_EVENTS if e not in ("DownloadBundle", "Install")]


def recording_revision(
    tmp_path: Path, name: str, record: Path, events=SCRIPTABLE
) -> tuple[Path, dict]:
    files = {f"scripts/{e}.sh": RECORDER.format(tag=name, record=record) for e in events}
    revision = write_tree(tmp_path / name, {"appspec.yml": "", **files})
    return revision, appspec(hooks={e: [hook(f"scripts/{e}.sh")] for e in events})


def records(record: Path) -> list[list[str]]:
    return [line.split("|") for line in record.read_text().splitlines()] if record.exists() else []


async def test_hook_order_and_environment(host, tmp_path) -> None:
    record = tmp_path / "record.txt"
    revision, spec = recording_revision(tmp_path, "v1", record)
    results = await host.deploy(revision, spec, DEFAULT_EVENTS, deployment_id="d-ORDER0001")
    assert [r.command for r in results] == list(DEFAULT_EVENTS) and all(r.ok for r in results)
    ran = records(record)
    # first deployment: the previous-revision events have nothing to run
    assert [r[0] for r in ran] == [e for e in SCRIPTABLE if e not in agent.PREVIOUS_REVISION_EVENTS]
    assert all(r[1:] == ["d-ORDER0001", "TestApp", "TestGroup", "dg-1", "v1"] for r in ran)
    assert results[2].revision == "none" and "nothing to run" in results[2].message


async def test_application_stop_runs_the_previous_revision(host, tmp_path) -> None:
    record = tmp_path / "record.txt"
    v1, spec1 = recording_revision(tmp_path, "v1", record)
    v2, spec2 = recording_revision(tmp_path, "v2", record)
    assert all(r.ok for r in await host.deploy(v1, spec1, DEFAULT_EVENTS))
    record.unlink()
    results = await host.deploy(v2, spec2, DEFAULT_EVENTS)
    assert all(r.ok for r in results)
    ran = records(record)
    assert [(r[0], r[5]) for r in ran[:3]] == [
        ("BeforeBlockTraffic", "v1"),
        ("AfterBlockTraffic", "v1"),
        ("ApplicationStop", "v1"),
    ]
    assert {r[5] for r in ran[3:]} == {"v2"}
    assert ran[2][1] == "d-TEST00002"  # the current deployment's id, the previous revision's script
    log = (host.deployment_dir("d-TEST00002") / "logs" / "scripts.log").read_text()
    assert "LifecycleEvent - ApplicationStop" in log  # logged in the current deployment's log


async def test_last_successful_is_written_after_install_even_if_validate_fails(
    host, tmp_path
) -> None:
    record = tmp_path / "record.txt"
    broken = write_tree(
        tmp_path / "broken",
        {
            "stop.sh": RECORDER.format(tag="broken", record=record),
            "validate.sh": "#!/bin/sh\nexit 1\n",
        },
    )
    spec = appspec(
        hooks={"ApplicationStop": [hook("stop.sh")], "ValidateService": [hook("validate.sh")]}
    )
    results = await host.deploy(broken, spec)
    assert results[-1].command == "ValidateService" and not results[-1].ok
    marker = host.root / "deployment-instructions" / "dg-1_last_successful_install"
    assert marker.read_text() == str(host.deployment_dir("d-TEST00001"))  # no trailing newline
    v2, spec2 = recording_revision(tmp_path, "v2", record)
    await host.deploy(v2, spec2, DEFAULT_EVENTS)
    assert records(record)[0][0] == "ApplicationStop" and records(record)[0][5] == "broken"


async def test_application_stop_after_download_uses_the_current_revision(host, tmp_path) -> None:
    record = tmp_path / "record.txt"
    v1, spec1 = recording_revision(tmp_path, "v1", record)
    v2, spec2 = recording_revision(tmp_path, "v2", record)
    await host.deploy(v1, spec1, DEFAULT_EVENTS)
    record.unlink()
    results = await host.deploy(v2, spec2, ["DownloadBundle", "Install", "ApplicationStop"])
    assert all(r.ok for r in results)
    assert records(record) == [
        ["ApplicationStop", "d-TEST00002", "TestApp", "TestGroup", "dg-1", "v2"]
    ]


async def test_previous_revision_removed_by_hand_fails_application_stop(host, tmp_path) -> None:
    record = tmp_path / "record.txt"
    v1, spec1 = recording_revision(tmp_path, "v1", record)
    await host.deploy(v1, spec1, DEFAULT_EVENTS)
    import shutil

    shutil.rmtree(host.deployment_dir("d-TEST00001"))
    results = await host.deploy(v1, spec1, DEFAULT_EVENTS)
    assert results[-1].command == "BeforeBlockTraffic" and not results[-1].ok
    assert results[-1].error_code == "UnknownError" and "AppSpec not found" in results[-1].message


async def test_layout_after_a_deployment(host, tmp_path) -> None:
    revision, spec = recording_revision(tmp_path, "v1", tmp_path / "record.txt")
    await host.deploy(revision, spec, DEFAULT_EVENTS, deployment_id="d-LAYOUT001")
    assert sorted(p.name for p in host.root.iterdir()) == [
        "deployment-instructions",
        "deployment-logs",
        "dg-1",
    ]
    assert [p.name for p in (host.root / "deployment-logs").iterdir()] == [
        "codedeploy-agent-deployments.log"
    ]
    deployment = host.deployment_dir("d-LAYOUT001")
    assert {"logs", "deployment-archive"} <= {p.name for p in deployment.iterdir()}
    instructions = host.root / "deployment-instructions"
    assert (instructions / "dg-1_most_recent_install").read_text() == str(deployment)
    assert {p.name for p in instructions.iterdir()} == {
        "dg-1_most_recent_install",
        "dg-1_last_successful_install",
        "dg-1-cleanup",
        "dg-1-install.json",
    }
    scripts_log = (deployment / "logs" / "scripts.log").read_text().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d LifecycleEvent - BeforeInstall", scripts_log[0]
    )
    assert scripts_log[1].endswith(" Script - scripts/BeforeInstall.sh")
    deployments_log = (
        host.root / "deployment-logs" / "codedeploy-agent-deployments.log"
    ).read_text()
    assert re.search(
        r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[d-LAYOUT001\]LifecycleEvent - BeforeInstall$",
        deployments_log,
        re.M,
    )


async def test_events_without_scripts_create_no_log(host, tmp_path) -> None:
    revision = write_tree(tmp_path / "v1", {"appspec.yml": ""})
    await host.deploy(revision, appspec(), SERVER_EVENTS, deployment_id="d-QUIET0001")
    assert not (host.deployment_dir("d-QUIET0001") / "logs" / "scripts.log").exists()


async def test_retention_keeps_max_revisions_and_the_last_successful(host, tmp_path) -> None:
    good = write_tree(tmp_path / "good", {"appspec.yml": ""})
    bad = write_tree(tmp_path / "bad", {"appspec.yml": "", "fail.sh": "#!/bin/sh\nexit 1\n"})
    await host.deploy(good, appspec(), SERVER_EVENTS, deployment_id="d-KEEP00001", max_revisions=3)
    failing = appspec(
        hooks={"BeforeInstall": [hook("fail.sh")]}
    )  # fails before Install: not "successful"
    for index in range(2, 8):
        time.sleep(0.01)  # distinct mtimes
        await host.deploy(
            bad, failing, SERVER_EVENTS, deployment_id=f"d-KEEP0000{index}", max_revisions=3
        )
    remaining = sorted(p.name for p in (host.root / "dg-1").iterdir())
    assert remaining == ["d-KEEP00001", "d-KEEP00006", "d-KEEP00007"]


@pytest.mark.parametrize("kind", ["tgz", "tar", "zip"])
async def test_archive_bundles_with_a_leading_directory(host, tmp_path, kind) -> None:
    source = write_tree(
        tmp_path / "src" / "myapp",
        {"appspec.yml": "", "site/a.txt": "a", "run.sh": "#!/bin/sh\necho archived\n"},
    )
    bundle = tmp_path / f"bundle.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(bundle, "w") as z:
            for path in sorted(source.rglob("*")):
                info = zipfile.ZipInfo.from_file(path, str(path.relative_to(source.parent)))
                z.writestr(info, path.read_bytes() if path.is_file() else b"")
    else:
        with tarfile.open(bundle, "w:gz" if kind == "tgz" else "w") as t:
            t.add(source, arcname="myapp")
    spec = appspec([("site", str(tmp_path / "dest"))], hooks={"ApplicationStart": [hook("run.sh")]})
    results = await host.deploy(
        bundle, spec, SERVER_EVENTS, bundle_type=kind, deployment_id="d-ARCH00001"
    )
    assert all(r.ok for r in results), [r.message for r in results]
    deployment = host.deployment_dir("d-ARCH00001")
    assert (deployment / "bundle.tar").is_symlink()
    assert (
        deployment / "deployment-archive" / "appspec.yml"
    ).exists()  # leading directory stripped
    assert (tmp_path / "dest" / "a.txt").read_text() == "a"
    assert any(m.get("line") == "archived\n" for m in host.messages)


async def test_bundle_sha256_mismatch_fails_download(host, tmp_path) -> None:
    bundle = tmp_path / "b.tgz"
    with tarfile.open(bundle, "w:gz") as t:
        t.add(write_tree(tmp_path / "s", {"appspec.yml": ""}), arcname=".")
    results = await host.deploy(
        bundle,
        appspec(),
        ["DownloadBundle"],
        bundle_type="tgz",
        bundle={"path": str(bundle), "type": "tgz", "sha256": "0" * 64},
    )
    assert not results[0].ok and "sha256" in results[0].message


def ensure_user(name: str) -> None:
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)


async def test_runas_and_sudo(host, world_readable_tmp: Path) -> None:
    require_tool("sudo")
    require_tool("su")
    ensure_user("deploydeck-test")
    tmp_path = world_readable_tmp
    host.root = tmp_path / "root"
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    who = f'#!/bin/sh\necho "$(id -un) $LIFECYCLE_EVENT" >> "{out}/who.txt"\n'
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "who.sh": who})
    spec = appspec(
        hooks={
            "BeforeInstall": [hook("who.sh", runas="deploydeck-test")],
            "AfterInstall": [hook("who.sh", sudo=True)],
            "ApplicationStart": [hook("who.sh", runas="deploydeck-test", sudo=True)],
        }
    )
    os.umask(0o022)
    results = await host.deploy(revision, spec)
    assert all(r.ok for r in results), [r.message for r in results]
    assert (out / "who.txt").read_text().splitlines() == [
        "deploydeck-test BeforeInstall",
        "root AfterInstall",
        "deploydeck-test ApplicationStart",
    ]


async def test_stop_during_a_hook_leaves_no_process(host, tmp_path) -> None:
    script = f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child.pid\nsleep 300\n"
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "hang.sh": script})
    spec = appspec(hooks={"BeforeInstall": [hook("hang.sh")]})
    task = asyncio.ensure_future(host.deploy(revision, spec))
    pid_file = tmp_path / "child.pid"
    while not pid_file.exists() or not pid_file.read_text().strip():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int(pid_file.read_text())
    assert not pid_alive(pid), Path(f"/proc/{pid}/status").read_text()[:300]


def agent_process(*args: str) -> subprocess.Popen[str]:
    """`python -m engine.host ARGS` from the repository, JSON lines over pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine.host", *args],
        cwd=Path(__file__).resolve().parents[2],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def protocol_command(tmp_path: Path, deployment_id: str, script: str) -> dict:
    """The fields of an agent command (all but "command") for a revision in `tmp_path`
    whose BeforeInstall runs `script`."""
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "s.sh": script})
    return {
        "deployment_id": deployment_id,
        "deployment_group_id": "g",
        "root_dir": str(tmp_path / "root"),
        "bundle": {"path": str(revision), "type": "directory"},
        "appspec": appspec(hooks={"BeforeInstall": [hook("s.sh")]}),
        "kill_grace_seconds": 1,
    }


def hanging_script(tmp_path: Path) -> str:
    """Waits on a background child whose pid it writes to `tmp_path`/child.pid."""
    return f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child.pid\nwait\n"


def test_agent_process_protocol(tmp_path: Path) -> None:
    """`python3 -m engine.host run` speaks JSON lines: progress, then one result."""
    base = protocol_command(tmp_path, "d-PROTO0001", "#!/bin/sh\necho hello\n")
    for event in ("DownloadBundle", "BeforeInstall"):
        proc = agent_process("run")
        proc.stdin.write(json.dumps({**base, "command": event}) + "\n")
        proc.stdin.flush()  # stdin stays open: closing it would stop the command
        messages = [json.loads(line) for line in proc.stdout]
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert messages[-1]["type"] == "result" and messages[-1]["result"]["status"] == "Succeeded"
    kinds = [m["type"] for m in messages]
    assert kinds == ["script_started", "script_spawned", "output", "script_finished", "result"]
    assert messages[2] == {
        **messages[2],
        "location": "s.sh",
        "stream": "stdout",
        "line": "hello\n",
    }


def test_closing_stdin_stops_the_command(tmp_path: Path) -> None:
    """End of input (the engine gone, or the SSH session lost) ends the running script."""
    base = protocol_command(tmp_path, "d-PROTO0002", hanging_script(tmp_path))
    for event in ("DownloadBundle", "BeforeInstall"):
        proc = agent_process("run")
        proc.stdin.write(json.dumps({**base, "command": event}) + "\n")
        proc.stdin.flush()
        if event == "BeforeInstall":
            pid_file = tmp_path / "child.pid"
            while not (pid_file.exists() and pid_file.read_text().strip()):
                time.sleep(0.05)
            proc.stdin.close()
        messages = [json.loads(line) for line in proc.stdout]
        if event == "DownloadBundle":
            proc.stdin.close()
        proc.wait(timeout=30)
    result = messages[-1]["result"]
    assert result["status"] == "Failed" and "stopped" in result["message"]
    assert not pid_alive(int((tmp_path / "child.pid").read_text()))


def test_serve_with_idle_exit_ends_the_hook_when_input_goes_quiet(tmp_path: Path) -> None:
    """A network that fails silently: no end of input ever comes. Heartbeats (empty lines)
    keep a hook running; when they stop, `serve --idle-exit` ends it and exits."""
    base = protocol_command(tmp_path, "d-PROTO0003", hanging_script(tmp_path))
    proc = agent_process("serve", "--idle-exit", "1.5")
    try:
        for event in ("DownloadBundle", "BeforeInstall"):
            proc.stdin.write(json.dumps({**base, "command": event}) + "\n")
            proc.stdin.flush()
            if event == "DownloadBundle":
                while json.loads(proc.stdout.readline())["type"] != "result":
                    pass
        pid_file = tmp_path / "child.pid"
        while not (pid_file.exists() and pid_file.read_text().strip()):
            time.sleep(0.05)
        child = int(pid_file.read_text())
        for _ in range(10):  # 3 s of heartbeats: twice the idle limit
            proc.stdin.write("\n")
            proc.stdin.flush()
            time.sleep(0.3)
        assert proc.poll() is None and pid_alive(child)
        quiet = time.monotonic()  # stdin stays open, and silent
        assert proc.wait(timeout=30) == 0
        took = time.monotonic() - quiet
        messages = [json.loads(line) for line in proc.stdout]
    finally:
        proc.kill()
    result = messages[-1]["result"]
    assert result["status"] == "Failed" and "stopped" in result["message"]
    assert not pid_alive(child)
    assert took > 1.0, took  # not before the idle limit (proc.wait bounds it above)
    assert "no input for 1.5 seconds" in proc.stderr.read()


@pytest.mark.parametrize("key", ["deployment_group_id", "deployment_id"])
async def test_ids_that_are_not_plain_folder_names_are_refused(tmp_path: Path, key: str) -> None:
    """The agent deletes old revisions inside the group's folder: an id escaping the root is
    refused before anything is created or removed."""
    (tmp_path / "precious").mkdir()
    command = {
        "command": "DownloadBundle",
        "root_dir": str(tmp_path / "root"),
        "deployment_group_id": "g",
        "deployment_id": "d-1",
        key: "..",
    }
    result = await agent.execute(command)
    assert result.error_code == "UnknownError"
    assert f"The {key} '..' is not a plain folder name" in result.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_the_agent_environment_follows_changes_to_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hooks start from the agent's environment as it is when they start: a copy kept between
    hooks is taken afresh once os.environ changes, and each hook gets a copy of its own."""
    monkeypatch.setenv("DD_TEST_FIRST", "1")
    first = agent.agent_environment()
    assert first == dict(os.environ) and first["DD_TEST_FIRST"] == "1"
    first["DD_TEST_FIRST"] = "changed by a hook's setup"
    assert agent.agent_environment()["DD_TEST_FIRST"] == "1"
    monkeypatch.setenv("DD_TEST_SECOND", "2")
    monkeypatch.setenv("DD_TEST_FIRST", "one")
    second = agent.agent_environment()
    assert second["DD_TEST_SECOND"] == "2" and second["DD_TEST_FIRST"] == "one"
    monkeypatch.delenv("DD_TEST_SECOND")
    assert "DD_TEST_SECOND" not in agent.agent_environment()
    assert agent.agent_environment() == dict(os.environ)
