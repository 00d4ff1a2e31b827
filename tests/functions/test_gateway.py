"""The invoke gateway with real worker processes and real HTTP, driven by boto3."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from botocore.exceptions import HTTPClientError

from engine.functions import FunctionGateway, FunctionRegistry

from .conftest import SHELL_WORKER, alive, client, in_thread, write_python_function


def payload_of(reply: dict) -> dict:
    return json.loads(reply["Payload"].read())


async def invoke(gateway: FunctionGateway, name: str, event: dict | None = None, **kw):
    lam = client("lambda", gateway)
    return await in_thread(lam.invoke, FunctionName=name, Payload=json.dumps(event or {}), **kw)


def publish_two(registry: FunctionRegistry, tmp_path: Path, name: str = "hello") -> None:
    code = write_python_function(tmp_path / "code" / name, "v1")
    registry.create(name, code, [sys.executable, "worker.py"])
    assert registry.publish_version(name) == "1"
    (code / "VERSION").write_text("v2\n")
    assert registry.publish_version(name) == "2"


async def test_boto3_invokes_an_alias_by_name_colon_alias(gateway, registry, tmp_path):
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "2")
    reply = await invoke(gateway, "hello:live", {"a": 1})
    assert reply["StatusCode"] == 200
    assert reply["ExecutedVersion"] == "2"
    assert "FunctionError" not in reply
    body = payload_of(reply)
    assert body["tag"] == "v2" and body["event"] == {"a": 1}
    assert body["version"] == body["env_version"] == "2"


async def test_qualifier_parameter_arn_and_latest_route_alike(gateway, registry, tmp_path):
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "1")
    by_qualifier = await invoke(gateway, "hello", Qualifier="live")
    assert by_qualifier["ExecutedVersion"] == "1"
    arn = "arn:aws:lambda:us-east-1:000000000000:function:hello:2"
    assert (await invoke(gateway, arn))["ExecutedVersion"] == "2"
    latest = await invoke(gateway, "hello")
    assert latest["ExecutedVersion"] == "$LATEST" and payload_of(latest)["tag"] == "v2"


async def test_unknown_function_alias_and_version_raise_resource_not_found(
    gateway, registry, tmp_path
):
    publish_two(registry, tmp_path)
    lam = client("lambda", gateway)
    for name in ("nope", "hello:nolias", "hello:9"):
        with pytest.raises(lam.exceptions.ResourceNotFoundException, match="Function not found"):
            await in_thread(lam.invoke, FunctionName=name, Payload=b"{}")


async def test_mismatched_qualifier_and_bad_json_are_refused(gateway, make_function):
    make_function("hello")
    lam = client("lambda", gateway)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="derived qualifier"):
        await in_thread(lam.invoke, FunctionName="hello:a", Qualifier="b", Payload=b"{}")
    with pytest.raises(lam.exceptions.InvalidRequestContentException, match="parse request body"):
        await in_thread(lam.invoke, FunctionName="hello", Payload=b"{not json")


async def test_function_error_sets_x_amz_function_error_and_lambda_error_body(
    gateway, make_function
):
    make_function("hello")
    reply = await invoke(gateway, "hello", {"raise": "bad input"})
    assert reply["StatusCode"] == 200
    assert reply["FunctionError"] == "Unhandled"
    assert payload_of(reply) == {
        "errorType": "ValueError",
        "errorMessage": "bad input",
        "stackTrace": ["worker.py line 1"],
    }


async def test_worker_stays_warm_between_calls(gateway, make_function):
    make_function("hello")
    first = payload_of(await invoke(gateway, "hello"))
    second = payload_of(await invoke(gateway, "hello"))
    assert first["pid"] == second["pid"]
    assert gateway.warm_workers("hello") == {"$LATEST": 1}


async def test_log_tail_returns_this_calls_stderr(gateway, make_function):
    make_function("hello")
    await invoke(gateway, "hello", {"log": "from the first call"})
    reply = await invoke(gateway, "hello", {"log": "from the second call"}, LogType="Tail")
    assert base64.b64decode(reply["LogResult"]).decode() == "from the second call\n"
    quiet = await invoke(gateway, "hello", LogType="Tail")
    assert quiet["LogResult"] == ""


async def test_a_shell_function_speaks_the_same_protocol(gateway, registry, tmp_path):
    code = tmp_path / "shellfn"
    code.mkdir()
    (code / "handler.sh").write_text(SHELL_WORKER)
    registry.create("shell", code, "sh handler.sh")
    registry.publish_version("shell")
    registry.set_alias("shell", "live", "1")
    reply = await invoke(gateway, "shell:live", {"n": 7})
    body = payload_of(reply)
    assert body["lang"] == "sh" and body["request"]["event"] == {"n": 7}
    assert body["request"]["context"]["functionVersion"] == "1"
    again = payload_of(await invoke(gateway, "shell:live", {"n": 8}))
    assert again["pid"] == body["pid"]


async def test_alias_weights_90_10_split_1000_calls_exactly(registry, tmp_path):
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "1", {"2": 0.1})
    async with FunctionGateway(registry, window_seconds=3600) as gateway:
        lam = client("lambda", gateway)

        def thousand() -> list[str]:
            return [
                lam.invoke(FunctionName="hello:live", Payload=b"{}")["ExecutedVersion"]
                for _ in range(1000)
            ]

        versions = await in_thread(thousand)
        assert versions.count("1") == 900 and versions.count("2") == 100
        # smooth: never two version-2 calls in a row
        assert all(not (a == b == "2") for a, b in itertools.pairwise(versions))
        assert gateway.routed_counts("hello", "live") == {"1": 900, "2": 100}
        assert gateway.actual_weights("hello", "live") == {"1": 0.9, "2": 0.1}
        # a shift is applied from the next call, read from the registry files
        registry.set_alias("hello", "live", "2")
        assert (await invoke(gateway, "hello:live"))["ExecutedVersion"] == "2"


async def test_calls_beyond_the_concurrency_limit_get_429(gateway, make_function):
    make_function("hello", concurrency=2, timeout=60)
    lam = client("lambda", gateway)
    slow = [
        asyncio.create_task(invoke(gateway, "hello", {"sleep": 2})),
        asyncio.create_task(invoke(gateway, "hello", {"sleep": 2})),
    ]
    while gateway.warm_workers("hello").get("$LATEST", 0) < 2:
        await asyncio.sleep(0.02)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as refused:
        await in_thread(lam.invoke, FunctionName="hello", Payload=b"{}")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert refused.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    pids = {payload_of(r)["pid"] for r in await asyncio.gather(*slow)}
    assert len(pids) == 2  # two warm workers served the two concurrent calls
    assert (await invoke(gateway, "hello"))["StatusCode"] == 200


async def test_a_crashed_worker_fails_its_call_and_restarts_on_the_next(gateway, make_function):
    make_function("hello")
    before = payload_of(await invoke(gateway, "hello"))["pid"]
    crashed = await invoke(gateway, "hello", {"exit": 3})
    assert crashed["FunctionError"] == "Unhandled"
    error = payload_of(crashed)
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"] == "Runtime exited with error: exit status 3"
    assert not alive(before)
    after = payload_of(await invoke(gateway, "hello"))["pid"]
    assert after != before and alive(after)


async def test_a_worker_over_its_timeout_is_killed_with_task_timed_out(gateway, make_function):
    make_function("hello", timeout=1)
    first = payload_of(await invoke(gateway, "hello", {"spawn": True}))
    worker, child = first["pid"], first["event"]["child"]
    reply = await invoke(gateway, "hello", {"sleep": 30})
    assert reply["FunctionError"] == "Unhandled"
    assert payload_of(reply) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "Task timed out after 1.00 seconds",
    }
    assert not alive(worker) and not alive(child)  # the whole group went
    assert payload_of(await invoke(gateway, "hello"))["pid"] != worker


async def test_a_command_that_cannot_start_is_a_function_error(gateway, registry, tmp_path):
    code = tmp_path / "empty"
    code.mkdir()
    registry.create("broken", code, "./no-such-program")
    reply = await invoke(gateway, "broken")
    assert reply["FunctionError"] == "Unhandled"
    error = payload_of(reply)
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert "no-such-program" in error["errorMessage"] and str(code) in error["errorMessage"]


async def test_event_invocation_answers_202_and_runs_in_the_background(
    gateway, make_function, tmp_path
):
    make_function("hello")
    reply = await invoke(gateway, "hello", {"log": "x"}, InvocationType="Event")
    assert reply["StatusCode"] == 202
    dry = await invoke(gateway, "hello", InvocationType="DryRun")
    assert dry["StatusCode"] == 204


async def test_closing_the_gateway_leaves_no_process(registry, make_function):
    make_function("hello", concurrency=3)
    gateway = FunctionGateway(registry)
    await gateway.start()
    replies = await asyncio.gather(
        *(invoke(gateway, "hello", {"spawn": True, "sleep": 0.3}) for _ in range(3))
    )
    bodies = [payload_of(r) for r in replies]
    pids = [b["pid"] for b in bodies] + [b["event"]["child"] for b in bodies]
    assert len(set(pids)) == 6 and all(alive(p) for p in pids)
    await gateway.close()
    assert [p for p in pids if alive(p)] == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", gateway.port)


async def test_workers_run_in_their_own_process_group(gateway, make_function):
    make_function("hello")
    pid = payload_of(await invoke(gateway, "hello"))["pid"]
    assert os.getpgid(pid) == pid != os.getpgid(0)


async def test_aws_cli_lambda_invoke_reaches_the_alias(gateway, registry, tmp_path):
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "2")
    aws = Path(sys.executable).with_name("aws")
    assert aws.exists(), "the AWS CLI is part of the test extras: pip install -e '.[test]'"
    out = tmp_path / "out.json"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(aws), "lambda", "invoke", "--endpoint-url", gateway.url,
        "--function-name", "hello:live", "--payload", '{"a": 1}', str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {"StatusCode": 200, "ExecutedVersion": "2"}
    body = json.loads(out.read_text())
    assert body["tag"] == "v2" and body["event"] == {"a": 1}


async def test_a_warm_worker_killed_while_idle_is_replaced_without_failing_a_call(
    gateway, make_function
):
    make_function("hello")
    before = payload_of(await invoke(gateway, "hello"))["pid"]
    os.kill(before, signal.SIGKILL)
    while alive(before):
        await asyncio.sleep(0.01)
    reply = await invoke(gateway, "hello")
    assert "FunctionError" not in reply
    assert payload_of(reply)["pid"] != before


async def test_a_reply_that_is_not_a_protocol_line_is_a_function_error(gateway, registry, tmp_path):
    code = tmp_path / "chatty"
    code.mkdir()
    (code / "run.sh").write_text("while read -r line; do echo 'debug print'; done\n")
    registry.create("chatty", code, "sh run.sh")
    reply = await invoke(gateway, "chatty")
    assert reply["FunctionError"] == "Unhandled"
    error = payload_of(reply)
    assert error["errorType"] == "Runtime.InvalidResponse"
    assert "debug print" in error["errorMessage"]
    assert gateway.warm_workers("chatty") == {}  # out of step: not kept warm


async def test_closing_the_gateway_mid_call_ends_the_worker(registry, make_function):
    make_function("hello", timeout=60)
    gateway = FunctionGateway(registry)
    await gateway.start()
    call = asyncio.create_task(invoke(gateway, "hello", {"spawn": True, "sleep": 60}))
    while not gateway.warm_workers("hello"):
        await asyncio.sleep(0.02)
    pids = gateway.worker_pids()
    await gateway.close()
    assert pids and [p for p in pids if alive(p)] == []
    with pytest.raises(HTTPClientError):  # the connection closed without an answer
        await call


async def test_changed_latest_settings_retire_the_warm_workers(gateway, registry, make_function):
    make_function("hello")
    old = payload_of(await invoke(gateway, "hello"))["pid"]
    function = registry.get("hello")
    registry.create("hello", function.code, list(function.command), environment={"NEW": "1"})
    new = payload_of(await invoke(gateway, "hello"))["pid"]
    assert new != old and not alive(old)
    assert gateway.worker_pids() == [new]


async def test_a_corrupt_registry_file_is_a_service_error_naming_it(
    gateway, registry, make_function
):
    make_function("hello")
    path = registry.root / "hello" / "function.json"
    path.write_text("{broken")
    lam = client("lambda", gateway)
    with pytest.raises(lam.exceptions.ServiceException, match=r"function\.json"):
        await in_thread(lam.invoke, FunctionName="hello", Payload=b"{}")


async def test_a_payload_over_6_mb_is_refused_as_too_large(gateway, make_function):
    make_function("hello")
    lam = client("lambda", gateway)
    big = json.dumps({"data": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        await in_thread(lam.invoke, FunctionName="hello", Payload=big)
    assert (await invoke(gateway, "hello"))["StatusCode"] == 200


CALLER = """
import json, sys
import boto3
lam = boto3.client("lambda")  # endpoint, region and credentials from the worker's environment
for line in sys.stdin:
    event = json.loads(line)["event"]
    reply = lam.invoke(FunctionName="hello:live", Payload=json.dumps(event))
    inner = json.loads(reply["Payload"].read())
    sys.stdout.write(json.dumps({"result": {"via": reply["ExecutedVersion"], "inner": inner}}) + "\\n")
    sys.stdout.flush()
"""


async def test_a_function_calls_another_through_aws_endpoint_url_lambda(
    gateway, registry, tmp_path
):
    publish_two(registry, tmp_path)
    registry.set_alias("hello", "live", "1")
    code = tmp_path / "caller"
    code.mkdir()
    (code / "caller.py").write_text(CALLER)
    registry.create("caller", code, [sys.executable, "caller.py"], timeout=60)
    body = payload_of(await invoke(gateway, "caller", {"n": 1}))
    assert (
        body["via"] == "1" and body["inner"]["tag"] == "v1" and body["inner"]["event"] == {"n": 1}
    )


async def test_a_worker_ignoring_sigterm_is_killed_when_the_gateway_closes(registry, tmp_path):
    code = tmp_path / "stubborn"
    code.mkdir()
    # ignores SIGTERM and the end of its input, and keeps a child in its group
    (code / "run.sh").write_text(
        "trap '' TERM\n"
        "sleep 300 &\n"
        'while read -r line; do printf \'{"result": {"pid": %s, "child": %s}}\\n\' "$$" "$!"; done\n'
        "while :; do sleep 1; done\n"
    )
    registry.create("stubborn", code, "sh run.sh")
    gateway = FunctionGateway(registry)
    await gateway.start()
    body = payload_of(await invoke(gateway, "stubborn"))
    await gateway.close()
    assert not alive(body["pid"]) and not alive(body["child"])


async def test_a_function_url_get_answers_the_result_or_502_when_the_function_errors(
    gateway, registry, tmp_path
):
    """GET /urls/{name}:{alias}/path invokes through the alias's weights with an HTTP event:
    200 with the result, 502 when the function errors (what an `http` alarm probes)."""
    code = tmp_path / "code" / "web"
    code.mkdir(parents=True)
    (code / "worker.py").write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    event = json.loads(line)['event']\n"
        "    path = event['rawPath']\n"
        "    if path == '/fail':\n"
        "        reply = {'error': {'errorType': 'KeyError', 'errorMessage': 'x'}}\n"
        "    else:\n"
        "        reply = {'result': {'path': path, 'method': event['requestContext']['http']"
        "['method']}}\n"
        "    sys.stdout.write(json.dumps(reply) + '\\n')\n"
        "    sys.stdout.flush()\n"
    )
    registry.create("web", code, [sys.executable, "worker.py"])
    assert registry.publish_version("web") == "1"
    registry.set_alias("web", "live", "1")

    def get(path: str) -> tuple[int, str, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(gateway.url + path, timeout=30) as answer:
                return answer.status, answer.headers["X-Amz-Executed-Version"], json.load(answer)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers["X-Amz-Executed-Version"], json.load(error)

    assert await in_thread(get, "/urls/web:live/hi") == (
        200,
        "1",
        {"path": "/hi", "method": "GET"},
    )
    status, version, body = await in_thread(get, "/urls/web:live/fail")
    assert (status, version, body["errorType"]) == (502, "1", "KeyError")
    status, _, body = await in_thread(get, "/urls/nope:live/")
    assert status == 404 and "Function not found" in body["Message"]
