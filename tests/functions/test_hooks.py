"""Hook executions: hook functions written for CodeDeploy with boto3 report their status to the
gateway's PutLifecycleEventHookExecutionStatus, reached through AWS_ENDPOINT_URL_CODEDEPLOY."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.functions import FunctionGateway, FunctionRegistry

from .conftest import client, in_thread

DEPLOYMENT = "d-ABCDEFGH1"

# A hook as one writes it for CodeDeploy: the client gets region, credentials and endpoint from
# the environment only. REPORTS lists the statuses to send; each call's outcome (or the
# exception's code) is appended to OUTCOMES as a JSON line.
HOOK = textwrap.dedent(
    """
    import json, os, sys
    import boto3
    codedeploy = boto3.client("codedeploy")
    for line in sys.stdin:
        event = json.loads(line)["event"]
        outcomes = []
        for status in json.loads(os.environ["REPORTS"]):
            try:
                reply = codedeploy.put_lifecycle_event_hook_execution_status(
                    deploymentId=event["DeploymentId"],
                    lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
                    status=status,
                )
                outcomes.append(["ok", reply["lifecycleEventHookExecutionId"]])
            except codedeploy.exceptions.ClientError as error:
                outcomes.append([error.response["Error"]["Code"], error.response["Error"]["Message"]])
        with open(os.environ["OUTCOMES"], "a") as out:
            out.write(json.dumps({"event": event, "outcomes": outcomes}) + "\\n")
        sys.stdout.write(json.dumps({"result": {"deploymentId": event["DeploymentId"]}}) + "\\n")
        sys.stdout.flush()
    """
)


def make_hook(registry: FunctionRegistry, tmp_path: Path, name: str, reports: list[str]) -> Path:
    code = tmp_path / "hooks" / name
    code.mkdir(parents=True)
    (code / "hook.py").write_text(HOOK)
    outcomes = tmp_path / f"{name}.outcomes"
    env = {"REPORTS": json.dumps(reports), "OUTCOMES": str(outcomes)}
    registry.create(name, code, [sys.executable, "hook.py"], timeout=60, environment=env)
    return outcomes


async def outcomes_of(path: Path) -> dict:
    """The hook's record of what its calls got, once it has written it."""
    while not path.exists() or not path.read_text().endswith("\n"):
        await asyncio.sleep(0.05)
    return json.loads(path.read_text().splitlines()[-1])


async def test_a_hook_reporting_succeeded_succeeds(gateway, registry, tmp_path):
    outcomes = make_hook(registry, tmp_path, "CodeDeployHook_pre", ["Succeeded"])
    execution = gateway.hooks.start(DEPLOYMENT, "CodeDeployHook_pre")
    assert await gateway.hooks.wait(execution, timeout=300) == "Succeeded"
    record = await outcomes_of(outcomes)
    assert record["event"] == {
        "DeploymentId": DEPLOYMENT,
        "LifecycleEventHookExecutionId": execution,
    }
    assert record["outcomes"] == [["ok", execution]]


async def test_a_hook_reporting_failed_fails(gateway, registry, tmp_path):
    make_hook(registry, tmp_path, "CodeDeployHook_post", ["Failed"])
    execution = gateway.hooks.start(DEPLOYMENT, "CodeDeployHook_post")
    assert await gateway.hooks.wait(execution, timeout=300) == "Failed"


async def test_a_second_report_is_refused_as_already_completed(gateway, registry, tmp_path):
    outcomes = make_hook(registry, tmp_path, "twice", ["Succeeded", "Failed"])
    execution = gateway.hooks.start(DEPLOYMENT, "twice")
    assert await gateway.hooks.wait(execution, timeout=300) == "Succeeded"
    record = await outcomes_of(outcomes)
    assert record["outcomes"][0] == ["ok", execution]
    assert record["outcomes"][1][0] == "LifecycleEventAlreadyCompletedException"
    assert gateway.hooks.get(execution).status == "Succeeded"


async def test_a_status_other_than_succeeded_or_failed_is_refused(gateway, registry, tmp_path):
    outcomes = make_hook(registry, tmp_path, "bad", ["InProgress", "Skipped", "Failed"])
    execution = gateway.hooks.start(DEPLOYMENT, "bad")
    assert await gateway.hooks.wait(execution, timeout=300) == "Failed"
    codes = [code for code, _ in (await outcomes_of(outcomes))["outcomes"]]
    assert codes == [
        "InvalidLifecycleEventHookExecutionStatusException",
        "InvalidLifecycleEventHookExecutionStatusException",
        "ok",
    ]


async def test_a_hook_that_never_reports_times_out_on_the_clock(registry, tmp_path):
    outcomes = make_hook(registry, tmp_path, "silent", [])
    clock = ManualClock()
    async with FunctionGateway(registry, clock=clock) as gateway:
        execution = gateway.hooks.start(DEPLOYMENT, "silent")
        waiting = asyncio.create_task(gateway.hooks.wait(execution, timeout=600))
        await outcomes_of(outcomes)  # the hook ran and returned without reporting
        while clock.sleeping == 0:
            await asyncio.sleep(0.01)
        await clock.advance(599)
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await clock.advance(1)
        assert await waiting == "timeout"
        cd = client("codedeploy", gateway)
        with pytest.raises(
            cd.exceptions.LifecycleEventAlreadyCompletedException, match="timed out"
        ):
            await in_thread(
                cd.put_lifecycle_event_hook_execution_status,
                deploymentId=DEPLOYMENT,
                lifecycleEventHookExecutionId=execution,
                status="Succeeded",
            )
        assert await gateway.hooks.wait(execution) == "Failed"


async def test_the_default_hook_timeout_is_one_hour(registry, tmp_path):
    make_hook(registry, tmp_path, "silent", [])
    clock = ManualClock()
    async with FunctionGateway(registry, clock=clock) as gateway:
        execution = gateway.hooks.start(DEPLOYMENT, "silent")
        waiting = asyncio.create_task(gateway.hooks.wait(execution))
        while clock.sleeping == 0:
            await asyncio.sleep(0.01)
        await clock.advance(3599)
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await clock.advance(1)
        assert await waiting == "timeout"


@pytest.mark.parametrize(
    ("deployment", "execution", "status", "code"),
    [
        (None, "x", "Succeeded", "DeploymentIdRequiredException"),
        ("deploy-1", "x", "Succeeded", "InvalidDeploymentIdException"),
        ("d-ZZZZZZZZZ", "x", "Succeeded", "DeploymentDoesNotExistException"),
        (
            DEPLOYMENT,
            "no-such-execution",
            "Succeeded",
            "InvalidLifecycleEventHookExecutionIdException",
        ),
        (DEPLOYMENT, None, "Succeeded", "InvalidLifecycleEventHookExecutionIdException"),
        (DEPLOYMENT, "known", "Unknown", "InvalidLifecycleEventHookExecutionStatusException"),
    ],
)
async def test_refusals_carry_codedeploys_exception_names(
    gateway, registry, tmp_path, deployment, execution, status, code
):
    make_hook(registry, tmp_path, "silent", [])
    known = gateway.hooks.start(DEPLOYMENT, "silent")
    cd = client("codedeploy", gateway)
    params = {"status": status}
    if deployment:
        params["deploymentId"] = deployment
    if execution:
        params["lifecycleEventHookExecutionId"] = known if execution == "known" else execution
    with pytest.raises(getattr(cd.exceptions, code)) as refused:
        await in_thread(cd.put_lifecycle_event_hook_execution_status, **params)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["Error"]["Message"]
    assert gateway.hooks.get(known).status == "InProgress"  # nothing changed


async def test_other_codedeploy_operations_are_refused_clearly(gateway):
    cd = client("codedeploy", gateway)
    with pytest.raises(cd.exceptions.ClientError, match="UnknownOperationException"):
        await in_thread(cd.get_deployment, deploymentId=DEPLOYMENT)


async def test_a_hook_naming_a_missing_function_keeps_the_reason_and_times_out(registry):
    clock = ManualClock()
    async with FunctionGateway(registry, clock=clock) as gateway:
        execution = gateway.hooks.start(DEPLOYMENT, "CodeDeployHook_missing")
        waiting = asyncio.create_task(gateway.hooks.wait(execution, timeout=5))
        while not gateway.hooks.get(execution).invoke_error:
            await asyncio.sleep(0.01)
        assert "Function not found" in gateway.hooks.get(execution).invoke_error
        while clock.sleeping == 0:
            await asyncio.sleep(0.01)
        await clock.advance(5)
        assert await waiting == "timeout"
