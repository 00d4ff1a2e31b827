"""What the fleet commands print reads right: aligned listings with a header, counts that match,
messages that neither repeat their error code nor contradict themselves."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from rich.console import Console

from engine.configs import PREDEFINED_CONFIGS, BatchScheduler
from tests.command_line import REPO, dd
from tests.engine.fleet import make_revision, write_workspace
from tui.render.live import render_deployment
from tui.render.state import DeploymentView, InstanceView

TARGET = ["--application-name", "app", "--deployment-group-name", "fleet"]


def deploy(folder: Path, revision: Path, *extra: str) -> subprocess.CompletedProcess:
    return dd(folder, "create-deployment", *TARGET, "--revision", str(revision), "--wait", *extra)


def test_list_deployments_has_a_header_and_aligned_columns(tmp_path: Path) -> None:
    write_workspace(tmp_path, 3)
    first = deploy(tmp_path, make_revision(tmp_path, "v1"))
    assert first.returncode == 0, first.stdout + first.stderr
    second = deploy(tmp_path, make_revision(tmp_path, "v2-with-a-long-revision-name"))
    assert second.returncode == 0, second.stdout + second.stderr
    lines = dd(tmp_path, "list-deployments").stdout.splitlines()
    assert lines[0].split()[:3] == ["DEPLOYMENT", "STATUS", "GROUP"]
    assert len(lines) == 3
    for title in ("STATUS", "GROUP", "REVISION", "CONFIG", "INSTANCES", "CREATOR"):
        column = lines[0].index(title)
        assert all(line[column - 2 : column] == "  " for line in lines[1:]), (title, lines)
        assert all(line[column] != " " for line in lines[1:]), (title, lines)
    assert "v2-with-a-long-revision-name" in lines[1]  # the revision's name, whole
    assert "3 Succeeded" in lines[1]


def test_list_deployments_json_counts_instances(tmp_path: Path) -> None:
    write_workspace(tmp_path, 3)
    assert deploy(tmp_path, make_revision(tmp_path, "v1")).returncode == 0
    listed = json.loads(dd(tmp_path, "list-deployments", "--output", "json").stdout)
    overview = listed["deployments"][0]["deploymentOverview"]
    assert overview["Succeeded"] == 3 and overview["Failed"] == 0
    deployment_id = listed["deployments"][0]["deploymentId"]
    got = json.loads(
        dd(tmp_path, "get-deployment", "--deployment-id", deployment_id, "--output", "json").stdout
    )
    assert got["deploymentInfo"]["deploymentOverview"] == overview


def test_success_message_counts_in_words(tmp_path: Path) -> None:
    for name in ("one", "three"):
        (tmp_path / name).mkdir()
    write_workspace(tmp_path / "one", 1)
    done = deploy(tmp_path / "one", make_revision(tmp_path, "v1"))
    assert "The instance succeeded" in done.stdout and "All 1 instance" not in done.stdout
    write_workspace(tmp_path / "three", 3)
    done = deploy(tmp_path / "three", make_revision(tmp_path, "v1"))
    assert "All 3 instances succeeded" in done.stdout


def test_health_constraints_is_said_once(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        2,
        env={"i01": {"FAIL_ON": "ApplicationStart"}, "i02": {"FAIL_ON": "ApplicationStart"}},
    )
    done = deploy(tmp_path, make_revision(tmp_path, "v1"))
    assert done.returncode == 1
    deployment_id = json.loads(dd(tmp_path, "list-deployments", "--output", "json").stdout)[
        "deployments"
    ][0]["deploymentId"]
    shown = dd(tmp_path, "get-deployment", "--deployment-id", deployment_id).stdout
    error = next(line for line in shown.splitlines() if "HEALTH_CONSTRAINTS" in line)
    assert error.count("HEALTH_CONSTRAINTS") == 1, error
    assert "HEALTH_CONSTRAINTS: Too many instance failures: " in error
    summary = next(line for line in done.stdout.splitlines() if "[HEALTH_CONSTRAINTS]" in line)
    assert summary.count("HEALTH_CONSTRAINTS") == 1, summary


def test_half_of_eight_failing_first_is_explained_without_contradiction() -> None:
    """HalfAtATime on 8: the first batch of 4 all fail, leaving no room for a second batch."""
    hosts = [f"web-{n}" for n in range(1, 9)]
    scheduler = BatchScheduler(PREDEFINED_CONFIGS["CodeDeployDefault.HalfAtATime"], hosts)
    for name in scheduler.next_batch():
        scheduler.record(name, False)
    assert scheduler.next_batch() == ()
    message = scheduler.outcome().message
    assert message.startswith("Too many instance failures: 4 of 8 instances failed")
    assert "at most 4 may fail" not in message
    assert "before the final batch at most 3 failures can be absorbed" in message
    assert "(HEALTH_CONSTRAINTS)" not in message


def test_a_manual_stop_names_its_cause_not_unknown_error(tmp_path: Path) -> None:
    write_workspace(tmp_path, 1, env={"i01": {"HANG_ON": "ApplicationStart"}})
    revision = make_revision(tmp_path, "v1")
    created = dd(tmp_path, "create-deployment", *TARGET, "--revision", str(revision))
    deployment_id = created.stdout.strip()
    pids = tmp_path / "pids.txt"
    while not pids.exists():
        time.sleep(0.1)
    assert (
        dd(tmp_path, "stop-deployment", "--deployment-id", deployment_id, "--wait").returncode == 0
    )
    shown = dd(tmp_path, "get-deployment", "--deployment-id", deployment_id).stdout
    failure = next(line for line in shown.splitlines() if "✖ i01" in line)
    assert "ApplicationStart: ended by the stop (MANUAL_STOP)" in failure, shown
    assert "UnknownError" not in failure


def test_local_events_suggest_the_event_meant(tmp_path: Path) -> None:
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: {tmp_path / 'root'}\n")
    revision = REPO / "sample_revisions" / "web-v1"
    done = dd(
        tmp_path, "local", "-l", str(revision), "-c", str(config), "-e", "ApplicationStop,Instal"
    )
    assert done.returncode == 1
    assert "did you mean Install (not Instal)?" in done.stdout


def test_the_live_table_sorts_names_naturally(tmp_path: Path) -> None:
    write_workspace(tmp_path, 1)
    assert deploy(tmp_path, make_revision(tmp_path, "v1")).returncode == 0
    deployment_id = json.loads(dd(tmp_path, "list-deployments", "--output", "json").stdout)[
        "deployments"
    ][0]["deploymentId"]
    from engine.api import Engine
    from engine.workspace import load_workspace

    engine = Engine(load_workspace(tmp_path / "deploydeck.yml").workspace)
    try:
        info = engine.get_deployment(deployment_id)
    finally:
        engine.close()
    names = ["web-10", "web-6", "web-1", "web-2"]
    view = DeploymentView(info, "InProgress")
    view.instances = {n: InstanceView(n, batch=1, status="InProgress") for n in names}
    console = Console(width=120, record=True)
    console.print(render_deployment(view))
    text = console.export_text()
    order = sorted(names, key=text.index)
    assert order == ["web-1", "web-2", "web-6", "web-10"], text
