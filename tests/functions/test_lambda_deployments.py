"""Lambda deployments as a user runs them: real `deploydeck` processes, real function workers,
hooks reporting over HTTP to the run's gateway, an alias shifted on a scaled clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.configs import get_config
from engine.configs.traffic import traffic_schedule
from engine.functions import FunctionRegistry
from tests.command_line import DEPLOYDECK, REPO

# The hook: records its call, then reports what HOOK_RESULT says (or nothing: "silent").
HOOK_WORKER = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    for line in sys.stdin:
        event = json.loads(line)["event"]
        mode = os.environ.get("HOOK_RESULT", "Succeeded")
        with open("calls.jsonl", "a") as log:
            log.write(json.dumps(event) + "\\n")
        if mode != "silent":
            body = {"deploymentId": event["DeploymentId"], "status": mode,
                    "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"]}
            request = urllib.request.Request(
                os.environ["AWS_ENDPOINT_URL_CODEDEPLOY"], data=json.dumps(body).encode(),
                headers={"X-Amz-Target":
                         "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus",
                         "Content-Type": "application/x-amz-json-1.1"})
            urllib.request.urlopen(request).read()
        sys.stdout.write(json.dumps({"result": {"reported": mode}}) + "\\n")
        sys.stdout.flush()
    """
)
APP_WORKER = textwrap.dedent(
    """
    import json, sys
    tag = open("VERSION").read().strip()
    for line in sys.stdin:
        sys.stdout.write(json.dumps({"result": {"tag": tag}}) + "\\n")
        sys.stdout.flush()
    """
)
LAMBDA_CONFIGS = [
    "CodeDeployDefault.LambdaAllAtOnce",
    *(f"CodeDeployDefault.LambdaCanary10Percent{m}Minutes" for m in (5, 10, 15, 30)),
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    *(f"CodeDeployDefault.LambdaLinear10PercentEvery{m}Minutes" for m in (2, 3, 10)),
]


def dd(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DEPLOYDECK, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def ok(folder: Path, *args: str) -> str:
    result = dd(folder, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Workspace:
    """A workspace with application `fn` (Lambda, group `live`), function `hello` at versions
    1 and 2 behind alias `live`, and the hook functions `pre` and `post`."""

    def __init__(self, root: Path, group: dict[str, Any] | None = None) -> None:
        self.root = root
        document = {
            "applications": {
                "fn": {"compute_platform": "Lambda", "deployment_groups": {"live": group or {}}}
            }
        }
        (root / "deploydeck.yml").write_text(yaml.safe_dump(document, sort_keys=False))
        self.registry = FunctionRegistry(root / ".deploydeck")
        code = root / "code" / "hello"
        code.mkdir(parents=True)
        (code / "worker.py").write_text(APP_WORKER)
        for tag in ("1", "2"):
            (code / "VERSION").write_text(tag)
            self.cli("create-function", "--code", str(code), "--command", "python3 worker.py")
            self.cli("publish-version", *(["--alias", "live"] if tag == "1" else []))
        self.code = code

    def cli(self, verb: str, *args: str, name: str = "hello") -> str:
        return ok(self.root, verb, "--function-name", name, *args)

    def hook(self, name: str, result: str = "Succeeded") -> Path:
        code = self.root / "code" / name
        code.mkdir(parents=True, exist_ok=True)
        (code / "worker.py").write_text(HOOK_WORKER)
        self.cli(
            "create-function",
            "--code",
            str(code),
            "--command",
            f"{sys.executable} worker.py",
            "--environment",
            f"HOOK_RESULT={result}",
            name=name,
        )
        return code / "calls.jsonl"

    def revision(self, name: str, current: int, target: int, **hooks: str) -> Path:
        folder = self.root / "revisions" / name
        folder.mkdir(parents=True)
        appspec = {
            "version": 0.0,
            "Resources": [
                {
                    "helloFunction": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": "hello",
                            "Alias": "live",
                            "CurrentVersion": str(current),
                            "TargetVersion": str(target),
                        },
                    }
                }
            ],
            "Hooks": [{event: function} for event, function in hooks.items()],
        }
        (folder / "appspec.yaml").write_text(yaml.safe_dump(appspec, sort_keys=False))
        return folder

    def deploy(self, revision: Path, *extra: str) -> str:
        out = ok(
            self.root,
            "create-deployment",
            "--application-name",
            "fn",
            "--deployment-group-name",
            "live",
            "--revision",
            str(revision),
            "--output",
            "json",
            *extra,
        )
        return json.loads(out)["deploymentId"]

    def get(self, deployment_id: str) -> dict[str, Any]:
        out = ok(self.root, "get-deployment", "--deployment-id", deployment_id, "--output", "json")
        return json.loads(out)["deploymentInfo"]

    def wait(self, deployment_id: str) -> dict[str, Any]:
        while True:
            info = self.get(deployment_id)
            if info["status"] in ("Succeeded", "Failed", "Stopped"):
                return info
            time.sleep(0.2)

    def weight(self) -> tuple[str, float]:
        """The alias's primary version and the weight on version 2 (or on any other)."""
        alias = self.registry.get("hello").aliases["live"]
        return alias.version, alias.weights().get("2", 0.0)

    def journal(self, deployment_id: str) -> list[dict[str, Any]]:
        out = ok(self.root, "journal", "--deployment-id", deployment_id, "--output", "json")
        return [json.loads(line) for line in out.splitlines()]


class AliasWatch:
    """Reads the alias every few milliseconds; keeps each change of the target's weight with
    when it was seen (monotonic seconds)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.seen: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            try:
                _, weight = self.workspace.weight()
            except Exception:  # a file being replaced: read again
                continue
            if not self.seen or self.seen[-1][1] != weight:
                self.seen.append((time.monotonic(), weight))
            time.sleep(0.003)

    def __enter__(self) -> AliasWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    yield Workspace(tmp_path)


@pytest.mark.parametrize("config_name", LAMBDA_CONFIGS, ids=lambda n: n.split(".")[1])
def test_each_lambda_config_shifts_the_alias_by_its_schedule_under_time_scaling(
    workspace: Workspace, config_name: str
) -> None:
    config = get_config(config_name, {})
    assert config is not None and config.traffic_routing is not None
    schedule = traffic_schedule(config.traffic_routing)
    interval = schedule[1].at_seconds if len(schedule) > 1 else 60
    scale = interval / 0.5  # an interval of the schedule takes half a second
    calls = workspace.hook("pre")
    revision = workspace.revision("v2", 1, 2, BeforeAllowTraffic="pre")
    with AliasWatch(workspace) as watch:
        deployment = workspace.deploy(
            revision, "--deployment-config-name", config_name, "--time-scale", f"{scale:g}"
        )
        info = workspace.wait(deployment)
    assert info["status"] == "Succeeded", info
    assert info["timeScale"] == scale
    assert info["targetVersionWeight"] == 1.0
    assert workspace.weight() == ("2", 1.0)
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["DeploymentId"] == deployment and call["LifecycleEventHookExecutionId"]
    # at the alias: each weight of the schedule in turn, each about when the schedule says
    wanted = [step.target_percent / 100 for step in schedule]
    assert [weight for _, weight in watch.seen] == [0.0, *wanted]
    first = watch.seen[1][0]
    for (seen_at, _), step in zip(watch.seen[1:], schedule, strict=True):
        scaled = (seen_at - first) * scale
        assert step.at_seconds - 0.2 * interval <= scaled <= step.at_seconds + 0.6 * interval
    # in the journal, on the run's scaled clock from AllowTraffic's start: never before its
    # time, before the next step's
    journal = workspace.journal(deployment)
    (allow,) = [
        e["time"]
        for e in journal
        if e["kind"] == "LifecycleEventStarted" and e["event"] == "AllowTraffic"
    ]
    shifts = [e for e in journal if e["kind"] == "TrafficShifted"]
    assert [s["weight"] for s in shifts] == wanted
    for shift, step in zip(shifts, schedule, strict=True):
        assert step.at_seconds <= shift["time"] - allow < step.at_seconds + interval


def alias(workspace: Workspace) -> dict[str, float]:
    return workspace.registry.get("hello").aliases["live"].weights()


def publish(workspace: Workspace, tag: str) -> None:
    (workspace.code / "VERSION").write_text(tag)
    workspace.cli(
        "create-function", "--code", str(workspace.code), "--command", "python3 worker.py"
    )
    assert workspace.cli("publish-version").split()[-1] == tag


def wait_for(condition: Any) -> None:
    while not condition():
        time.sleep(0.01)


def test_time_runs_at_its_real_pace_unless_a_scale_is_asked_for(workspace: Workspace) -> None:
    """No --time-scale -> the deployment records none and its journal keeps wall-clock time."""
    before = time.time()
    deployment = workspace.deploy(workspace.revision("v2", 1, 2))
    info = workspace.wait(deployment)
    after = time.time()
    assert info["status"] == "Succeeded" and "timeScale" not in info
    assert all(before <= e["time"] <= after for e in workspace.journal(deployment))
    assert "time x" not in ok(workspace.root, "get-deployment", "--deployment-id", deployment)


def test_the_function_verbs_create_publish_and_invoke(workspace: Workspace) -> None:
    """create-function, publish-version --alias and invoke NAME:ALIAS / NAME:VERSION."""
    out = ok(workspace.root, "invoke", "--function-name", "hello:live", "--output", "json")
    assert json.loads(out) == {
        "StatusCode": 200,
        "ExecutedVersion": "1",
        "FunctionError": False,
        "Payload": {"tag": "1"},
    }
    assert json.loads(ok(workspace.root, "invoke", "--function-name", "hello:2")) == {"tag": "2"}
    publish(workspace, "3")
    workspace.cli("publish-version", "--alias", "live")  # unchanged code: version 3 again
    assert json.loads(ok(workspace.root, "invoke", "--function-name", "hello:live")) == {"tag": "3"}
    missing = dd(workspace.root, "invoke", "--function-name", "nope")
    assert missing.returncode == 1 and "nope" in missing.stdout
    assert "Traceback" not in missing.stderr
    bad = dd(
        workspace.root,
        "create-function",
        "--function-name",
        "x",
        "--code",
        "/nonexistent",
        "--command",
        "true",
    )
    assert bad.returncode == 1 and "/nonexistent" in bad.stdout


def test_plan_of_a_lambda_deployment_says_its_schedule(workspace: Workspace) -> None:
    """`plan` has no batches to show for a Lambda group: it says the config's schedule."""
    result = dd(
        workspace.root,
        "plan",
        "--application-name",
        "fn",
        "--deployment-group-name",
        "live",
        "--revision",
        str(workspace.revision("v2", 1, 2)),
        "--deployment-config-name",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "(10% at 0 min, 100% at 5 min)" in result.stdout


def test_calls_through_the_runs_gateway_follow_the_alias_weights(workspace: Workspace) -> None:
    """During a canary's 10 % phase, calls to NAME:ALIAS through the run's gateway (the one
    `deploydeck invoke` finds) go 1 in 10 to the target version, run by its own worker."""
    deployment = workspace.deploy(
        workspace.revision("v2", 1, 2),
        "--deployment-config-name",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "--time-scale",
        "60",  # the 10 % phase lasts 5 s
    )
    wait_for(lambda: alias(workspace).get("2") == 0.1)
    url = workspace.registry.gateway_url()
    assert url is not None
    tags = []
    for _ in range(10):
        request = urllib.request.Request(
            f"{url}/2015-03-31/functions/hello/invocations?Qualifier=live", data=b"{}"
        )
        with urllib.request.urlopen(request) as response:
            tags.append(json.loads(response.read())["tag"])
    assert alias(workspace).get("2") == 0.1, "the phase ended during the calls: scale less"
    assert sorted(tags) == ["1"] * 9 + ["2"]
    assert workspace.wait(deployment)["status"] == "Succeeded"
    assert workspace.registry.gateway_url() is None  # the run's gateway closed with it
