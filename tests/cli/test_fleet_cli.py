"""The fleet CLI as a user runs it: init, plan, create-deployment --wait, get, list, stop."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cli.test_local_cli import free_port
from tests.command_line import REPO, create_deployment, dd, group_args, register_revision
from tests.engine.fleet import live_pids, make_revision, write_workspace

WEB_V1 = str(REPO / "sample_revisions" / "web-v1")
WEB_BROKEN = str(REPO / "sample_revisions" / "web-broken")


def target(*extra: str) -> list[str]:
    return [*group_args("web"), *extra]


@pytest.fixture
def web_fleet(tmp_path: Path):
    """`deploydeck init` with 10 instances, each on a free port; servers stopped afterwards."""
    assert dd(tmp_path, "init", "--local-instances", "10").returncode == 0
    path = tmp_path / "deploydeck.yml"
    document = yaml.safe_load(path.read_text())
    ports = {}
    for name, instance in document["instances"].items():
        ports[name] = free_port()
        instance["environment"]["WEB_PORT"] = str(ports[name])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    yield tmp_path, ports
    for pid_file in tmp_path.glob(".deploydeck/instances/*/fs/tmp/deploydeck-web/run/server.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def serves(port: int) -> str:
    return (
        urllib.request.urlopen(f"http://127.0.0.1:{port}/version.txt", timeout=5)
        .read()
        .decode()
        .strip()
    )


def test_web_v1_then_broken_rolls_back(web_fleet) -> None:
    """The issue's done-when: 10 instances, HalfAtATime, auto-rollback, from the CLI."""
    folder, ports = web_fleet
    plan = dd(folder, "plan", *target("--revision", WEB_V1))
    assert plan.returncode == 0 and "batch 2 (5)" in plan.stdout
    first = dd(folder, "create-deployment", *target("--revision", WEB_V1, "--wait"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert {serves(p) for p in ports.values()} == {"v1"}

    broken = dd(folder, "create-deployment", *target("--revision", WEB_BROKEN, "--wait"))
    assert broken.returncode == 1, broken.stdout
    assert "HEALTH_CONSTRAINTS" in broken.stdout and "answered 404" in broken.stdout
    assert {serves(p) for p in ports.values()} == {"v1"}  # every instance serves web-v1 again

    listing = json.loads(dd(folder, "list-deployments", "--output", "json").stdout)["deployments"]
    assert [(d["status"], d["creator"]) for d in listing] == [
        ("Succeeded", "codeDeployRollback"),
        ("Failed", "user"),
        ("Succeeded", "user"),
    ]
    failed_id, rollback_id = listing[1]["deploymentId"], listing[0]["deploymentId"]
    assert listing[1]["rollbackInfo"]["rollbackDeploymentId"] == rollback_id
    assert listing[0]["rollbackInfo"]["rollbackTriggeringDeploymentId"] == failed_id
    detail = json.loads(
        dd(folder, "get-deployment", "--deployment-id", failed_id, "--output", "json").stdout
    )
    assert detail["deploymentInfo"]["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"
    failed = [i for i in detail["instances"] if i["status"] == "Failed"]
    assert len(failed) == 5
    diagnostics = failed[0]["lifecycleEvents"][-1]["diagnostics"]
    assert diagnostics["errorCode"] == "ScriptFailed" and "404" in diagnostics["logTail"]
    text = dd(folder, "get-deployment", "--deployment-id", failed_id).stdout
    assert f"rolled back by     {rollback_id}" in text and "answered 404" in text
    text = dd(folder, "get-deployment", "--deployment-id", rollback_id).stdout
    assert "  message   " in text and "  error   " not in text  # a success is no error

    # rolling back the automatic rollback would deploy web-broken again: refused, and why
    again = dd(folder, "rollback", "--deployment-id", rollback_id)
    assert again.returncode == 1
    assert "itself the automatic rollback" in again.stdout and "create a deployment" in again.stdout

    # `deploydeck -w FOLDER COMMAND` from elsewhere; --output json stays pure JSON on stdout
    # even when the workspace has warnings (they go to stderr)
    with (folder / "deploydeck.yml").open("a") as f:
        f.write("unknown_top_level_key: 1\n")
    elsewhere = dd(folder.parent, "-w", str(folder), "list-deployments", "--output", "json")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert len(json.loads(elsewhere.stdout)["deployments"]) == 3
    assert "unknown_top_level_key" in elsewhere.stderr


def test_stop_from_another_process(tmp_path: Path) -> None:
    write_workspace(tmp_path, 2, env={"i01": {"HANG_ON": "BeforeInstall"}})
    revision = make_revision(tmp_path, "v1")
    created = dd(
        tmp_path,
        *create_deployment(str(revision)),
        "--output",
        "json",
    )
    deployment_id = json.loads(created.stdout)["deploymentId"]
    for _ in range(600):
        if live_pids(tmp_path / "pids.txt"):
            break
        time.sleep(0.05)
    again = dd(
        tmp_path,
        *create_deployment(str(revision)),
    )
    assert again.returncode == 1 and deployment_id in again.stdout
    stop = dd(tmp_path, "stop-deployment", "--deployment-id", deployment_id, "--wait")
    assert stop.returncode == 0
    detail = json.loads(
        dd(tmp_path, "get-deployment", "--deployment-id", deployment_id, "--output", "json").stdout
    )
    assert detail["deploymentInfo"]["status"] == "Stopped"
    assert live_pids(tmp_path / "pids.txt") == []


def test_workspace_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "deploydeck.yml").write_text("applications:\n  web:\n    compute_platform: Servr\n")
    done = dd(tmp_path, "list-deployments")
    assert done.returncode == 1
    assert "deploydeck.yml:3:" in done.stdout and "compute_platform" in done.stdout


def test_no_workspace_suggests_init(tmp_path: Path) -> None:
    done = dd(tmp_path, "list-deployments")
    assert done.returncode == 1 and "deploydeck init" in done.stdout


def test_register_and_deploy_a_registered_revision(tmp_path: Path) -> None:
    write_workspace(tmp_path, 1)
    revision = make_revision(tmp_path, "v1")
    registered = json.loads(
        dd(
            tmp_path,
            *register_revision(str(revision)),
            "--description",
            "first",
            "--output",
            "json",
        ).stdout
    )
    listed = dd(tmp_path, "list-revisions").stdout
    assert registered["sha256"][:12] in listed and "first" in listed
    done = dd(
        tmp_path,
        "create-deployment",
        *group_args(),
        "--registered-revision",
        registered["sha256"][:10],
        "--wait",
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stdout
    assert (
        json.loads(done.stdout)["deploymentInfo"]["revision"]["localLocation"]["sha256"]
        == registered["sha256"]
    )
    journal = dd(
        tmp_path,
        "journal",
        "--deployment-id",
        json.loads(done.stdout)["deploymentInfo"]["deploymentId"],
    ).stdout
    assert "deployment Succeeded" in journal


def test_invalid_revision_is_refused_before_anything(tmp_path: Path) -> None:
    write_workspace(tmp_path, 1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "appspec.yml").write_text(
        "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - timeout: 3\n"
    )
    done = dd(
        tmp_path,
        *create_deployment(str(bad)),
    )
    assert done.returncode == 1 and "appspec.yml:5:" in done.stdout
    assert (
        json.loads(dd(tmp_path, "list-deployments", "--output", "json").stdout)["deployments"] == []
    )


def test_a_dead_deployment_is_shown_interrupted(tmp_path: Path) -> None:
    """After its runner is SIGKILLed, every reader shows the deployment as interrupted, with
    a stopped clock and the recovery commands (with the -w given), and create refuses so."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_workspace(workspace, 2, env={"i01": {"HANG_ON": "BeforeInstall"}})
    revision = make_revision(tmp_path, "v1")
    app = group_args()
    created = dd(
        tmp_path, "-w", str(workspace), "create-deployment", *app, "--revision", str(revision)
    )
    deployment_id = created.stdout.strip()
    for _ in range(600):
        if live_pids(workspace / "pids.txt"):
            break
        time.sleep(0.05)
    detail = dd(tmp_path, "-w", str(workspace), "get-deployment", "--deployment-id", deployment_id)
    assert "(interrupted)" not in detail.stdout  # alive: shown as it is
    runner = json.loads(
        dd(
            tmp_path,
            "-w",
            str(workspace),
            "journal",
            "--deployment-id",
            deployment_id,
            "--output",
            "json",
        ).stdout.splitlines()[1]
    )["pid"]
    os.kill(runner, signal.SIGKILL)
    while Path(f"/proc/{runner}").exists():
        time.sleep(0.05)
    advice = [
        f"deploydeck {command} -w {workspace} --deployment-id {deployment_id}"
        for command in ("resume-deployment", "stop-deployment", "rollback")
    ]

    def shown(*args: str) -> str:
        done = dd(tmp_path, "-w", str(workspace), *args)
        assert "Traceback" not in done.stdout + done.stderr
        return done.stdout

    first = shown("get-deployment", "--deployment-id", deployment_id)
    assert "InProgress (interrupted)" in first.splitlines()[0]
    assert all(command in first for command in advice), first
    time.sleep(1.2)
    later = shown("get-deployment", "--deployment-id", deployment_id)
    duration = [line for line in first.splitlines() if "duration" in line]
    assert duration and duration == [line for line in later.splitlines() if "duration" in line]
    listed = shown("list-deployments")
    assert "InProgress (interrupted)" in listed
    assert [line.split()[-1] for line in listed.splitlines() if deployment_id in line] == [
        duration[0].split()[-1]
    ]
    as_json = json.loads(shown("list-deployments", "--output", "json"))["deployments"][0]
    assert as_json["status"] == "InProgress" and as_json["interrupted"] is True
    detail_json = json.loads(
        shown("get-deployment", "--deployment-id", deployment_id, "--output", "json")
    )
    assert detail_json["deploymentInfo"]["interrupted"] is True
    refused = dd(
        tmp_path, "-w", str(workspace), "create-deployment", *app, "--revision", str(revision)
    )
    assert refused.returncode == 1
    assert f"has an interrupted deployment, {deployment_id}" in refused.stdout
    assert "wait for it" not in refused.stdout.lower()
    assert all(command in refused.stdout for command in advice), refused.stdout
