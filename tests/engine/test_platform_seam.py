"""The platform seam: a deployment's kind picks its run strategy; Server in-place runs through
it against fake Targets (the Target protocol), engine steps (BlockTraffic, AllowTraffic) run
beside agent commands, and a kind the engine cannot run yet is refused with what it lacks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine, EngineError
from engine.clock import RealClock
from engine.configs import get_config
from engine.deployments.inplace import InPlaceRun
from engine.deployments.platforms import SERVER_IN_PLACE, NotSupported, strategy_for
from engine.deployments.run import RevisionPayload, RunContext, StopRequest
from engine.deployments.runner import DeploymentRunner
from engine.deployments.triggers import TriggerDispatcher
from engine.host.results import FAILED, SUCCEEDED, CommandResult
from engine.model import (
    SERVER_IN_PLACE_EVENTS,
    SERVER_IN_PLACE_TRAFFIC_EVENTS,
    ComputePlatform,
    DeploymentInfo,
    DeploymentKind,
    DeploymentOption,
    DeploymentOptions,
    DeploymentStyle,
    DeploymentType,
    RevisionRef,
)
from engine.store import Store
from engine.targets.base import Emit, Target
from engine.traffic.model import AllowResult, BlockResult, InstanceState, TrafficError
from engine.workspace import Workspace, WorkspaceError, load_workspace
from tests.engine.fleet import make_revision, write_workspace
from tests.host.harness import write_tree

SHA = "c" * 64


class FakeTarget:
    """An instance that answers each agent command from a script: it fails `fail_on`, and
    `hang_on` waits until cancelled (recording that it was)."""

    def __init__(self, name: str, log: list[str], fail_on: str = "", hang_on: str = "") -> None:
        self.name = name
        self.log = log
        self.fail_on = fail_on
        self.hang_on = hang_on
        self.commands: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.closed = False

    @property
    def host(self) -> str:
        return f"fake:{self.name}"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        yield

    async def run(self, command: dict[str, Any], emit: Emit) -> CommandResult:
        event = command["command"]
        self.commands.append(command)
        self.log.append(f"{self.name} {event}")
        emit({"type": "output", "location": "x.sh", "stream": "stdout", "line": f"ran {event}"})
        if event == self.hang_on:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(event)
                raise
        if event == self.fail_on:
            return CommandResult(event, FAILED, "ScriptFailed", "x.sh", "exit 3", "boom", 3)
        return CommandResult(event, SUCCEEDED)

    async def close(self) -> None:
        self.closed = True


class FakeBalancer:
    """A LoadBalancer that records block and allow; `refuse` makes allow fail."""

    kind = "fake"

    def __init__(self, log: list[str], refuse: str = "") -> None:
        self.log = log
        self.refuse = refuse

    async def start(self) -> None:
        self.log.append("balancer start")

    async def close(self) -> None:
        self.log.append("balancer close")

    async def block(self, instance: str) -> BlockResult:
        self.log.append(f"{instance} block")
        return BlockResult(instance, 0.5, True)

    async def allow(self, instance: str) -> AllowResult:
        self.log.append(f"{instance} allow")
        if instance == self.refuse:
            raise TrafficError(f"{instance} did not pass its health checks: connection refused")
        return AllowResult(instance, 1.5)

    async def states(self) -> dict[str, InstanceState]:
        return {}  # nothing to journal: these tests follow the calls, not the states


def setup(tmp_path: Path, count: int = 2) -> tuple[Workspace, Store, DeploymentInfo]:
    workspace = load_workspace(write_workspace(tmp_path, count)).unwrap()
    store = Store(workspace.state_dir / "state.db")
    deployment = DeploymentInfo(
        "d-SEAM00001",
        "app",
        "fleet",
        "CodeDeployDefault.OneAtATime",
        "Created",
        RevisionRef(SHA, str(tmp_path / "rev"), "directory"),
        create_time=1.0,
    )
    store.append(ev.DeploymentCreated(deployment.id, 1.0, deployment))
    return workspace, store, deployment


def context(
    workspace: Workspace, store: Store, deployment: DeploymentInfo, targets: dict[str, FakeTarget]
) -> RunContext:
    def targets_for(_ws: Workspace, names: Sequence[str], _watch: object) -> dict[str, Target]:
        return {name: targets[name] for name in names}

    config = get_config(deployment.config_name)
    assert config is not None
    return RunContext(
        store=store,
        clock=RealClock(),
        workspace=workspace,
        deployment=deployment,
        config=config,
        revision=RevisionPayload("/nowhere", "directory", SHA, {"version": 0.0}),
        triggers=TriggerDispatcher((), lambda problem: None),
        targets_for=targets_for,
    )


async def test_server_in_place_runs_through_the_seam(tmp_path: Path) -> None:
    workspace, store, deployment = setup(tmp_path)
    log: list[str] = []
    targets = {n: FakeTarget(n, log) for n in ("i01", "i02")}
    strategy = strategy_for(deployment.kind)
    assert deployment.kind == SERVER_IN_PLACE
    run = strategy(context(workspace, store, deployment, targets))
    final = await run.run()
    await run.close()
    assert final.status == "Succeeded"
    assert log == [f"i01 {e}" for e in SERVER_IN_PLACE_EVENTS] + [
        f"i02 {e}" for e in SERVER_IN_PLACE_EVENTS
    ]  # OneAtATime: one instance after the other, every event in order
    command = targets["i01"].commands[0]
    assert (command["deployment_id"], command["deployment_type"]) == (deployment.id, "IN_PLACE")
    assert all(t.closed for t in targets.values())
    states = store.instance_states("app", "fleet")
    assert {n: (s.revision_sha256, s.last_status) for n, s in states.items()} == {
        "i01": (SHA, "Succeeded"),
        "i02": (SHA, "Succeeded"),
    }
    output = [e.event for e in store.journal(deployment.id) if isinstance(e.event, ev.HookOutput)]
    assert len(output) == 2 * len(SERVER_IN_PLACE_EVENTS)
    assert store.get_deployment(deployment.id).to_api()["computePlatform"] == "Server"
    store.close()


async def test_a_stop_ends_the_running_step_and_skips_the_rest(tmp_path: Path) -> None:
    workspace, store, deployment = setup(tmp_path, 1)
    target = FakeTarget("i01", [], hang_on="Install")
    run = strategy_for(deployment.kind)(context(workspace, store, deployment, {"i01": target}))
    task = asyncio.create_task(run.run())
    while "Install" not in [c["command"] for c in target.commands]:
        await asyncio.sleep(0.01)
    run.request_stop(StopRequest(False))
    final = await task
    await run.close()
    assert final.status == "Stopped"
    assert target.cancelled == ["Install"]
    (instance,) = final.instances
    statuses = {e.name: e.status for e in instance.events}
    assert instance.status == "Failed"
    assert statuses["Install"] == "Failed"
    assert statuses["ApplicationStart"] == statuses["ValidateService"] == "Skipped"
    assert run.stop_request == StopRequest(False)
    store.close()


def traffic_run(
    workspace: Workspace,
    store: Store,
    deployment: DeploymentInfo,
    targets: dict[str, FakeTarget],
    balancer: FakeBalancer | None,
) -> InPlaceRun:
    ctx = context(workspace, store, deployment, targets)
    return InPlaceRun(
        store=store,
        clock=ctx.clock,
        deployment=deployment,
        config=ctx.config,
        targets=dict(targets),
        order=list(targets),
        revision=ctx.revision,
        group_id="app.fleet",
        triggers=ctx.triggers,
        lifecycle=SERVER_IN_PLACE_TRAFFIC_EVENTS,
        balancer=balancer,  # type: ignore[arg-type]
    )


async def test_traffic_steps_are_skipped_without_a_balancer(tmp_path: Path) -> None:
    workspace, store, deployment = setup(tmp_path, 1)
    log: list[str] = []
    target = FakeTarget("i01", log)
    final = await traffic_run(workspace, store, deployment, {"i01": target}, None).run()
    assert final.status == "Succeeded"
    events = {e.name: e.status for e in final.instances[0].events}
    assert events["BlockTraffic"] == events["AllowTraffic"] == "Skipped"
    assert events["BeforeBlockTraffic"] == events["AfterAllowTraffic"] == "Succeeded"
    sent = [c["command"] for c in target.commands]
    assert "BlockTraffic" not in sent and "AllowTraffic" not in sent  # never the agent's
    notes = [
        e.event.note
        for e in store.journal(deployment.id)
        if isinstance(e.event, ev.LifecycleEventFinished) and e.event.event == "BlockTraffic"
    ]
    assert notes == ["no load balancer: the group has none"]
    store.close()


async def test_traffic_steps_call_the_balancer_between_agent_events(tmp_path: Path) -> None:
    workspace, store, deployment = setup(tmp_path, 1)
    log: list[str] = []
    run = traffic_run(
        workspace, store, deployment, {"i01": FakeTarget("i01", log)}, FakeBalancer(log)
    )
    assert (await run.run()).status == "Succeeded"
    assert log.pop(0) == "balancer start"
    assert log == [f"i01 {e}" for e in ("BeforeBlockTraffic", "block", "AfterBlockTraffic")] + [
        f"i01 {e}" for e in SERVER_IN_PLACE_EVENTS
    ] + [f"i01 {e}" for e in ("BeforeAllowTraffic", "allow", "AfterAllowTraffic")]
    store.close()


async def test_a_failed_allow_fails_the_instance_with_the_balancers_reason(
    tmp_path: Path,
) -> None:
    workspace, store, deployment = setup(tmp_path, 1)
    log: list[str] = []
    balancer = FakeBalancer(log, refuse="i01")
    run = traffic_run(workspace, store, deployment, {"i01": FakeTarget("i01", log)}, balancer)
    final = await run.run()
    assert final.status == "Failed"
    failed = final.instances[0].failed_event()
    assert failed is not None and failed.name == "AllowTraffic"
    assert failed.diagnostics is not None
    assert "did not pass its health checks" in failed.diagnostics.message
    assert {e.name: e.status for e in final.instances[0].events}["AfterAllowTraffic"] == "Skipped"
    store.close()


@pytest.mark.parametrize(
    "kind, named",
    [
        (
            DeploymentKind(
                ComputePlatform.LAMBDA,
                DeploymentStyle(DeploymentType.IN_PLACE, DeploymentOption.WITH_TRAFFIC_CONTROL),
            ),
            "Lambda IN_PLACE WITH_TRAFFIC_CONTROL deployments are not supported yet",
        ),
        (
            DeploymentKind(style=DeploymentStyle(DeploymentType.BLUE_GREEN)),
            "blue/green runs",
        ),
    ],
)
def test_a_kind_without_a_strategy_is_refused_with_what_it_lacks(
    kind: DeploymentKind, named: str
) -> None:
    with pytest.raises(NotSupported, match=named) as refused:
        strategy_for(kind)
    assert "It runs Server IN_PLACE WITHOUT_TRAFFIC_CONTROL" in str(refused.value)


def workspace_with(tmp_path: Path, application: dict[str, Any]) -> Path:
    write_tree(tmp_path / "srv", {"keep": ""})
    document = {
        "applications": {"app": application},
        "instances": {"i01": {"root": str(tmp_path / "srv"), "tags": {"role": "web"}}},
    }
    path = tmp_path / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "application, refusal",
    [
        (
            {
                "deployment_groups": {
                    "fleet": {
                        "tag_filters": [{"key": "role", "value": "web"}],
                        "deployment_style": {"deployment_type": "BLUE_GREEN"},
                    }
                }
            },
            "Server BLUE_GREEN WITHOUT_TRAFFIC_CONTROL deployments are not supported yet",
        ),
    ],
    ids=["blue-green"],
)
async def test_create_deployment_refuses_an_unsupported_kind_and_records_nothing(
    tmp_path: Path, application: dict[str, Any], refusal: str
) -> None:
    workspace = load_workspace(workspace_with(tmp_path, application)).unwrap()
    engine = Engine(workspace, run_mode="inline")
    try:
        request = CreateDeploymentRequest(
            "app", "fleet", revision_path=make_revision(tmp_path, "v1")
        )
        with pytest.raises(EngineError, match=refusal):
            await engine.create_deployment(request)
        with pytest.raises(EngineError, match=refusal):
            engine.preview(request)
        assert engine.list_deployments() == []
        assert engine.list_revisions() == []  # refused before the revision was kept
    finally:
        await engine.aclose()


async def test_the_appspec_kind_must_match_the_platform(tmp_path: Path) -> None:
    engine = Engine(load_workspace(write_workspace(tmp_path, 1)).unwrap(), run_mode="inline")
    lambda_appspec = {
        "version": 0.0,
        "Resources": [
            {
                "fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": "fn",
                        "Alias": "live",
                        "CurrentVersion": "1",
                        "TargetVersion": "2",
                    },
                }
            }
        ],
    }
    revision = write_tree(tmp_path / "fn", {"appspec.yml": yaml.safe_dump(lambda_appspec)})
    try:
        with pytest.raises(EngineError) as refused:
            await engine.create_deployment(
                CreateDeploymentRequest("app", "fleet", revision_path=revision)
            )
        assert str(refused.value) == (
            f"{revision}/appspec.yml is a Lambda appspec, but this deployment is for the Server compute "
            "platform: deploy a Server revision, or set the application's compute_platform to "
            "Lambda"
        )
        assert engine.list_deployments() == []
    finally:
        await engine.aclose()


async def test_a_deployment_records_its_platform_and_style(tmp_path: Path) -> None:
    engine = Engine(load_workspace(write_workspace(tmp_path, 1)).unwrap(), run_mode="inline")
    try:
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=make_revision(tmp_path, "v1"))
        )
        final = await engine.wait(created.id, timeout=120)
        assert final.status == "Succeeded"
        api = final.to_api()
        assert api["computePlatform"] == "Server"
        assert api["deploymentStyle"] == {
            "deploymentType": "IN_PLACE",
            "deploymentOption": "WITHOUT_TRAFFIC_CONTROL",
        }
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    "style, message",
    [
        ({"deployment_type": "BLUE_GREN"}, "deployment_type must be one of IN_PLACE, BLUE_GREEN"),
        ({"deployment_option": "TRAFFIC"}, "deployment_option must be one of"),
        ("IN_PLACE", "deployment_style must be a mapping"),
    ],
)
def test_an_unknown_deployment_style_is_a_clear_workspace_error(
    tmp_path: Path, style: Any, message: str
) -> None:
    group = {"tag_filters": [{"key": "role", "value": "web"}], "deployment_style": style}
    path = workspace_with(tmp_path, {"deployment_groups": {"fleet": group}})
    with pytest.raises(WorkspaceError) as failed:
        load_workspace(path).unwrap()
    text = str(failed.value)
    assert message in text
    assert "deploydeck.yml" in text and "applications.app.deployment_groups.fleet" in text


def test_an_unknown_deployment_style_key_is_warned_about_like_every_unknown_key(
    tmp_path: Path,
) -> None:
    group = {"tag_filters": [{"key": "role", "value": "web"}], "deployment_style": {"type": "X"}}
    result = load_workspace(workspace_with(tmp_path, {"deployment_groups": {"fleet": group}}))
    assert result.ok
    (warning,) = [w for w in result.warnings if "deployment_style" in w.message]
    assert warning.message == "unknown key 'type' in deployment_style; it is ignored"


def test_the_group_style_defaults_to_in_place_without_traffic_control(tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(tmp_path, 1)).unwrap()
    assert workspace.group("app", "fleet").kind == SERVER_IN_PLACE


async def test_the_runner_fails_a_recorded_deployment_it_cannot_run(tmp_path: Path) -> None:
    """A deployment recorded with a kind this engine has no strategy for (a newer deploydeck
    wrote it, or the strategy was removed) ends Failed with the reason, not a crash."""
    workspace, store, _ = setup(tmp_path)
    ecs_deployment = DeploymentInfo(
        "d-SEAMECS01",
        "app",
        "other",
        "CodeDeployDefault.LambdaAllAtOnce",
        "Created",
        RevisionRef(SHA, str(tmp_path / "rev"), "directory"),
        create_time=2.0,
        compute_platform=ComputePlatform.LAMBDA,
        deployment_style=DeploymentStyle(
            DeploymentType.IN_PLACE, DeploymentOption.WITH_TRAFFIC_CONTROL
        ),
    )
    store.append(ev.DeploymentCreated(ecs_deployment.id, 2.0, ecs_deployment))
    final = await DeploymentRunner(workspace, store).run(ecs_deployment.id)
    assert final.status == "Failed"
    assert final.error_code == "NOT_SUPPORTED"
    assert final.error_message is not None
    assert final.error_message.startswith(
        "Lambda IN_PLACE WITH_TRAFFIC_CONTROL deployments are not supported yet"
    )
    store.close()


@pytest.mark.parametrize("event", ["BeforeBlockTraffic", "AfterBlockTraffic"])
@pytest.mark.parametrize("ignore", [True, False])
async def test_ignore_application_stop_failures_covers_the_block_hooks(
    tmp_path: Path, event: str, ignore: bool
) -> None:
    workspace, store, deployment = setup(tmp_path, 1)
    deployment = dataclasses.replace(
        deployment, options=DeploymentOptions(ignore_application_stop_failures=ignore)
    )
    log: list[str] = []
    target = FakeTarget("i01", log, fail_on=event)
    final = await traffic_run(
        workspace, store, deployment, {"i01": target}, FakeBalancer(log)
    ).run()
    assert final.status == ("Succeeded" if ignore else "Failed")
    assert ("i01 allow" in log) is ignore
    store.close()
