"""Real multi-instance deployments to local instances, through the engine's facade."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, EngineError
from engine.workspace import load_workspace
from tests.engine.fleet import live_pids, make_revision, tree_digest, write_workspace

_ENGINES: list[Engine] = []


def engine_for(path: Path) -> Engine:
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    _ENGINES.append(engine)
    return engine


@pytest.fixture(autouse=True)
async def _close_engines():
    yield
    while _ENGINES:
        await _ENGINES.pop().aclose()


def request(revision: Path, **kw) -> CreateDeploymentRequest:
    return CreateDeploymentRequest("app", "fleet", revision_path=revision, **kw)


async def deploy(engine: Engine, revision: Path, **kw):
    created = await engine.create_deployment(request(revision, **kw))
    return await engine.wait(created.id, timeout=120)


def site(folder: Path, instance: str) -> Path:
    return folder / ".deploydeck" / "instances" / instance / "fs" / "srv" / "app"


def batches_of(engine: Engine, deployment_id: str) -> list[tuple[str, ...]]:
    return [
        e.event.instances
        for e in engine.journal(deployment_id)
        if isinstance(e.event, ev.BatchStarted)
    ]


@pytest.mark.parametrize(
    ("config", "failing", "expect_status", "expect_batches", "expect_skipped"),
    [
        (
            "CodeDeployDefault.AllAtOnce",
            {"i02"},
            "Succeeded",
            [("i01", "i02", "i03", "i04")],
            set(),
        ),
        (
            "CodeDeployDefault.AllAtOnce",
            {"i01", "i02", "i03", "i04"},
            "Failed",
            [("i01", "i02", "i03", "i04")],
            set(),
        ),
        (
            "CodeDeployDefault.HalfAtATime",
            set(),
            "Succeeded",
            [("i01", "i02"), ("i03", "i04")],
            set(),
        ),
        (
            "CodeDeployDefault.HalfAtATime",
            {"i01"},
            "Succeeded",
            [("i01", "i02"), ("i03",), ("i04",)],
            set(),
        ),
        (
            "CodeDeployDefault.HalfAtATime",
            {"i01", "i02"},
            "Failed",
            [("i01", "i02")],
            {"i03", "i04"},
        ),
        (
            "CodeDeployDefault.OneAtATime",
            {"i04"},
            "Succeeded",
            [("i01",), ("i02",), ("i03",), ("i04",)],
            set(),
        ),
        ("CodeDeployDefault.OneAtATime", {"i02"}, "Failed", [("i01",), ("i02",)], {"i03", "i04"}),
        ("TwoHealthy", {"i01"}, "Succeeded", [("i01", "i02"), ("i03",), ("i04",)], set()),
    ],
)
async def test_configs_with_failures(
    tmp_path, config, failing, expect_status, expect_batches, expect_skipped
) -> None:
    path = write_workspace(
        tmp_path,
        4,
        config=config,
        env={name: {"FAIL_ON": "ValidateService"} for name in failing},
        custom_configs={
            "TwoHealthy": {"minimum_healthy_hosts": {"type": "HOST_COUNT", "value": 2}}
        },
    )
    engine = engine_for(path)
    final = await deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == expect_status, final.error_message
    assert batches_of(engine, final.id) == expect_batches
    statuses = {i.name: i.status for i in final.instances}
    assert {n for n, s in statuses.items() if s == "Skipped"} == expect_skipped
    assert {n for n, s in statuses.items() if s == "Failed"} == failing - expect_skipped
    if expect_status == "Failed":
        assert final.error_code == "HEALTH_CONSTRAINTS"
    for name in failing - expect_skipped:
        failed = final.instance(name).failed_event()
        assert failed.name == "ValidateService"
        assert failed.diagnostics.error_code == "ScriptFailed" and failed.diagnostics.exit_code == 3
        assert failed.diagnostics.script_name == "hooks/ValidateService.sh"
        assert "failing on purpose" in failed.diagnostics.log_tail
        assert [e.status for e in final.instance(name).events][-1] == "Failed"
    for name in expect_skipped:
        assert {e.status for e in final.instance(name).events} == {"Skipped"}


async def test_health_constraints_invalid_touches_nothing(tmp_path) -> None:
    path = write_workspace(tmp_path, 1, config="CodeDeployDefault.HalfAtATime")
    engine = engine_for(path)
    final = await deploy(engine, make_revision(tmp_path, "v1"))
    assert final.status == "Failed" and final.error_code == "HEALTH_CONSTRAINTS_INVALID"
    assert final.instances[0].status == "Skipped"
    assert not (tmp_path / ".deploydeck" / "instances" / "i01").exists()


async def test_second_deployment_of_a_group_is_refused(tmp_path) -> None:
    path = write_workspace(tmp_path, 2, env={"i01": {"HANG_ON": "BeforeInstall"}})
    engine = engine_for(path)
    first = await engine.create_deployment(request(make_revision(tmp_path, "v1")))
    with pytest.raises(EngineError, match=first.id):
        await engine.create_deployment(request(make_revision(tmp_path, "v2")))
    await engine.stop_deployment(first.id)
    final = await engine.wait(first.id, timeout=60)
    assert final.status == "Stopped"


async def test_stop_in_the_middle_of_a_hook_leaves_no_process(tmp_path) -> None:
    path = write_workspace(
        tmp_path,
        4,
        config="CodeDeployDefault.HalfAtATime",
        env={"i01": {"HANG_ON": "AfterInstall"}},
    )
    engine = engine_for(path)
    created = await engine.create_deployment(request(make_revision(tmp_path, "v1")))
    pid_file = tmp_path / "pids.txt"
    for _ in range(600):
        if len(live_pids(pid_file)) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(live_pids(pid_file)) == 2
    for _ in range(600):  # i02, in i01's batch, finishes while i01 hangs
        if engine.get_deployment(created.id).instance("i02").status == "Succeeded":
            break
        await asyncio.sleep(0.05)
    assert await engine.stop_deployment(created.id) == "Pending"
    final = await engine.wait(created.id, timeout=60)
    assert final.status == "Stopped" and final.error_code == "MANUAL_STOP"
    assert live_pids(pid_file) == []
    statuses = {i.name: i.status for i in final.instances}
    assert statuses == {"i01": "Failed", "i02": "Succeeded", "i03": "Skipped", "i04": "Skipped"}
    hung = {e.name: e.status for e in final.instance("i01").events}
    assert hung["AfterInstall"] == "Failed" and hung["ApplicationStart"] == "Skipped"
    with pytest.raises(EngineError, match="already ended"):
        await engine.stop_deployment(created.id)


async def test_auto_rollback_restores_the_previous_files_exactly(tmp_path) -> None:
    path = write_workspace(
        tmp_path,
        4,
        config="CodeDeployDefault.HalfAtATime",
        env={n: {"FAIL_ON": "ValidateService@v2"} for n in ("i01", "i02")},
        auto_rollback=["DEPLOYMENT_FAILURE"],
    )
    engine = engine_for(path)
    v1 = make_revision(tmp_path, "v1", {"index.html": "one", "keep.txt": "same"})
    first = await deploy(engine, v1)
    assert first.status == "Succeeded"
    before = {name: tree_digest(site(tmp_path, name)) for name in ("i01", "i02", "i03", "i04")}
    v2 = make_revision(
        tmp_path, "v2", {"index.html": "two", "keep.txt": "same", "added.txt": "new"}
    )
    failed = await deploy(engine, v2)
    assert failed.status == "Failed"
    rollback_id = failed.rollback.rollback_deployment_id
    assert rollback_id
    rollback = await engine.wait(rollback_id, timeout=120)
    assert rollback.status == "Succeeded"
    assert rollback.creator == "codeDeployRollback"
    assert rollback.rollback.rollback_triggering_deployment_id == failed.id
    assert rollback.revision.sha256 == first.revision.sha256
    assert {i.name for i in rollback.instances} == {"i01", "i02"}  # the instances v2 touched
    after = {name: tree_digest(site(tmp_path, name)) for name in ("i01", "i02", "i03", "i04")}
    assert after == before
    assert not (site(tmp_path, "i02") / "added.txt").exists()
    assert "succeeded" in engine.get_deployment(failed.id).rollback.rollback_message.lower()


async def test_no_previous_revision_says_so(tmp_path) -> None:
    path = write_workspace(
        tmp_path,
        2,
        env={"i01": {"FAIL_ON": "ApplicationStart"}, "i02": {"FAIL_ON": "ApplicationStart"}},
        auto_rollback=["DEPLOYMENT_FAILURE"],
    )
    engine = engine_for(path)
    failed = await deploy(engine, make_revision(tmp_path, "v1"))
    assert failed.status == "Failed"
    assert failed.rollback.rollback_deployment_id is None
    assert "no revision to roll back to" in failed.rollback.rollback_message


async def test_stop_with_rollback(tmp_path) -> None:
    path = write_workspace(tmp_path, 2, config="CodeDeployDefault.OneAtATime")
    engine = engine_for(path)
    v1 = make_revision(tmp_path, "v1")
    assert (await deploy(engine, v1)).status == "Succeeded"
    workspace_text = path.read_text().replace(
        "INSTANCE_NAME: i02", "INSTANCE_NAME: i02\n      HANG_ON: BeforeInstall@v2"
    )
    path.write_text(workspace_text)
    engine = engine_for(path)
    created = await engine.create_deployment(request(make_revision(tmp_path, "v2")))
    for _ in range(600):
        if live_pids(tmp_path / "pids.txt"):
            break
        await asyncio.sleep(0.05)
    await engine.stop_deployment(created.id, auto_rollback=True)
    stopped = await engine.wait(created.id, timeout=60)
    for _ in range(200):
        stopped = engine.get_deployment(created.id)
        if stopped.rollback.rollback_deployment_id:
            break
        await asyncio.sleep(0.05)
    rollback = await engine.wait(stopped.rollback.rollback_deployment_id, timeout=120)
    assert stopped.status == "Stopped"
    assert rollback.status == "Succeeded" and rollback.revision.sha256 == (
        await_first_revision(engine, v1)
    )
    assert (site(tmp_path, "i01") / "version.txt").read_text() == "v1\n"
    assert live_pids(tmp_path / "pids.txt") == []


def await_first_revision(engine: Engine, location: Path) -> str:
    return next(
        r.revision.sha256
        for r in engine.list_revisions("app")
        if r.revision.location == str(location)
    )


async def test_ignore_application_stop_failures(tmp_path) -> None:
    path = write_workspace(tmp_path, 1, env={"i01": {"FAIL_ON": "ApplicationStop"}})
    engine = engine_for(path)
    assert (
        await deploy(engine, make_revision(tmp_path, "v1"))
    ).status == "Succeeded"  # no previous: no-op
    blocked = await deploy(engine, make_revision(tmp_path, "v2"))
    assert blocked.status == "Failed"
    assert blocked.instances[0].failed_event().name == "ApplicationStop"
    passed = await deploy(
        engine, make_revision(tmp_path, "v2"), ignore_application_stop_failures=True
    )
    assert passed.status == "Succeeded"
    events = {e.name: e.status for e in passed.instances[0].events}
    assert events["ApplicationStop"] == "Failed" and events["ValidateService"] == "Succeeded"


async def test_update_outdated_instances_only(tmp_path) -> None:
    path = write_workspace(tmp_path, 3)
    engine = engine_for(path)
    v1 = make_revision(tmp_path, "v1")
    assert (await deploy(engine, v1)).status == "Succeeded"
    path.write_text(path.read_text().replace("i03:", "i04:\n    tags: {role: web}\n  i03:", 1))
    engine = engine_for(path)
    again = await deploy(engine, v1, update_outdated_instances_only=True)
    assert [i.name for i in again.instances] == ["i04"]


async def test_outdated_only_includes_instances_whose_last_deployment_failed(tmp_path) -> None:
    """v1 installs on i02 but its ValidateService fails there: i02 runs v1's files yet is
    Unhealthy, so deploying v1 again with updateOutdatedInstancesOnly goes to i02."""
    path = write_workspace(tmp_path, 3, env={"i02": {"FAIL_ON": "ValidateService"}})
    engine = engine_for(path)
    v1 = make_revision(tmp_path, "v1")
    first = await deploy(engine, v1)
    assert first.instance("i02").status == "Failed"
    write_workspace(tmp_path, 3)  # i02 fixed
    engine = engine_for(path)
    again = await deploy(engine, v1, update_outdated_instances_only=True)
    assert [i.name for i in again.instances] == ["i02"]
    assert again.status == "Succeeded"


async def test_file_exists_behavior_of_the_deployment(tmp_path) -> None:
    path = write_workspace(tmp_path, 1)
    stray = site(tmp_path, "i01") / "index.html"
    stray.parent.mkdir(parents=True)
    stray.write_text("hand-made")
    engine = engine_for(path)
    refused = await deploy(engine, make_revision(tmp_path, "v1"))
    assert refused.status == "Failed"
    assert "DISALLOW" in refused.instances[0].failed_event().diagnostics.message
    kept = await deploy(engine, make_revision(tmp_path, "v1"), file_exists_behavior="RETAIN")
    assert kept.status == "Succeeded" and stray.read_text() == "hand-made"


async def test_manual_rollback_redeploys_the_revision_before(tmp_path) -> None:
    path = write_workspace(tmp_path, 2)
    engine = engine_for(path)
    v1, v2 = make_revision(tmp_path, "v1"), make_revision(tmp_path, "v2")
    first = await deploy(engine, v1)
    second = await deploy(engine, v2)
    assert (site(tmp_path, "i01") / "version.txt").read_text() == "v2\n"
    manual = await engine.rollback(second.id)
    final = await engine.wait(manual.id, timeout=120)
    assert final.status == "Succeeded" and final.creator == "user"
    assert final.revision.sha256 == first.revision.sha256
    assert engine.get_deployment(second.id).rollback.rollback_deployment_id == manual.id
    assert (site(tmp_path, "i01") / "version.txt").read_text() == "v1\n"


async def test_revision_folder_changed_after_deploy_still_rolls_back(tmp_path) -> None:
    path = write_workspace(
        tmp_path,
        1,
        auto_rollback=["DEPLOYMENT_FAILURE"],
    )
    engine = engine_for(path)
    v1 = make_revision(tmp_path, "v1")
    assert (await deploy(engine, v1)).status == "Succeeded"
    (v1 / "site" / "version.txt").write_text("edited after the deployment\n")
    path.write_text(
        path.read_text().replace(
            "INSTANCE_NAME: i01", "INSTANCE_NAME: i01\n      FAIL_ON: ValidateService"
        )
    )
    engine = engine_for(path)
    failed = await deploy(engine, make_revision(tmp_path, "v2"))
    rollback = await engine.wait(failed.rollback.rollback_deployment_id, timeout=120)
    assert (
        site(tmp_path, "i01") / "version.txt"
    ).read_text() == "v1\n"  # the snapshot, not the edit
    assert rollback.status == "Failed"  # i01 still fails ValidateService, by its env


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _first_message(path: Path) -> dict:
    """The first JSON message in a trigger's output file, or {} while it is not all written."""
    try:
        return json.loads(path.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return {}


async def test_triggers_reach_a_real_http_server_a_file_and_a_command(tmp_path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        path = write_workspace(
            tmp_path,
            2,
            env={"i02": {"FAIL_ON": "ValidateService"}},
            triggers=[
                {
                    "name": "web",
                    "events": ["DeploymentStart", "DeploymentSuccess", "InstanceFailure"],
                    "webhook": url,
                },
                {"name": "audit", "events": ["DeploymentSuccess"], "file": "audit.jsonl"},
                {
                    "name": "cmd",
                    "events": ["InstanceSuccess"],
                    "command": f"cat >> {tmp_path / 'cmd.jsonl'}",
                },
            ],
        )
        engine = engine_for(path)
        final = await deploy(engine, make_revision(tmp_path, "v1"))
        # deliveries finish just after the status turns final; a file exists before its
        # writer has written it, so wait for a whole JSON message in each
        for _ in range(2400):
            if (
                len(_Recorder.received) >= 3
                and _first_message(tmp_path / "audit.jsonl")
                and _first_message(tmp_path / "cmd.jsonl")
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        server.shutdown()
    assert final.status == "Succeeded"
    names = [
        (m["eventTriggerName"], m.get("status") or m.get("instanceStatus"))
        for m in _Recorder.received
    ]
    # one trigger's messages arrive in the order things happened
    assert names == [("web", "InProgress"), ("web", "Failed"), ("web", "Succeeded")]
    success = next(m for m in _Recorder.received if m.get("status") == "Succeeded")
    assert success["deploymentId"] == final.id and success["applicationName"] == "app"
    assert success["deploymentOverview"] == {
        "Failed": "1",
        "InProgress": "0",
        "Pending": "0",
        "Skipped": "0",
        "Succeeded": "1",
    }
    assert isinstance(success["createTime"], str) and "." in success["createTime"]
    instance = next(m for m in _Recorder.received if "instanceId" in m)
    assert (
        instance["instanceId"] == "i02"
        and instance["lifecycleEvents"][-1]["LifecycleEventStatus"] == "Failed"
    )
    assert json.loads((tmp_path / "audit.jsonl").read_text())["status"] == "Succeeded"
    assert _first_message(tmp_path / "cmd.jsonl")["instanceId"] == "i01"


async def test_the_journal_replays_the_whole_deployment(tmp_path) -> None:
    from tui.render.state import FleetState

    path = write_workspace(tmp_path, 3, config="CodeDeployDefault.OneAtATime")
    engine = engine_for(path)
    final = await deploy(engine, make_revision(tmp_path, "v1"))
    state = FleetState()
    for entry in engine.journal(final.id):
        state.apply(entry.event)
    view = state.deployments[final.id]
    assert view.status == "Succeeded"
    assert {n: v.status for n, v in view.instances.items()} == {
        i.name: i.status for i in final.instances
    }
    assert [b for b in view.batches] == [("i01",), ("i02",), ("i03",)]
    assert any("ValidateService on i03" in line for line in view.instances["i03"].output)


async def test_a_revision_over_max_bundle_mb_is_refused_before_anything(tmp_path) -> None:
    path = write_workspace(tmp_path, 2, settings={"max_bundle_mb": 1})
    engine = engine_for(path)
    big = make_revision(tmp_path, "big", {"blob.bin": "x" * (2 * 1024 * 1024)})
    with pytest.raises(EngineError, match=r"larger than|limit|exceeds"):
        await engine.create_deployment(request(big))
    assert engine.list_deployments() == []
    small = make_revision(tmp_path, "small")
    assert (await deploy(engine, small)).status == "Succeeded"
