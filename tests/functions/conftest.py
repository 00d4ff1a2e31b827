"""Fixtures for the functions tests: sample functions written to disk (a Python worker and a
shell one), a registry in a tmp state folder, a started gateway, and boto3 clients for it."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from engine.functions import FunctionGateway, FunctionRegistry

# A Python worker speaking the JSON-lines protocol. The event steers it: {"sleep": s},
# {"exit": code}, {"raise": message}, {"spawn": true} (a background child in its group),
# {"log": text} (to stderr); every answer says which code (VERSION file) and process ran.
PYTHON_WORKER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    tag = open("VERSION").read().strip()
    for line in sys.stdin:
        request = json.loads(line)
        event, context = request["event"], request["context"]
        if event.get("log"):
            print(event["log"], file=sys.stderr, flush=True)
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if "exit" in event:
            os._exit(event["exit"])
        if event.get("spawn"):
            child = subprocess.Popen(["sleep", "300"])
            event = {**event, "child": child.pid}
        if event.get("raise"):
            reply = {"error": {"errorType": "ValueError", "errorMessage": event["raise"],
                               "stackTrace": ["worker.py line 1"]}}
        else:
            reply = {"result": {"tag": tag, "pid": os.getpid(), "event": event,
                                "version": context["functionVersion"],
                                "env_version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}}
        sys.stdout.write(json.dumps(reply) + "\\n")
        sys.stdout.flush()
    """
)

# The same protocol in POSIX shell: the request line is echoed back inside the result.
SHELL_WORKER = textwrap.dedent(
    """\
    #!/bin/sh
    while IFS= read -r line; do
        printf '{"result": {"lang": "sh", "pid": %s, "request": %s}}\\n' "$$" "$line"
    done
    """
)


def write_python_function(folder: Path, tag: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "worker.py").write_text(PYTHON_WORKER)
    (folder / "VERSION").write_text(tag + "\n")
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> FunctionRegistry:
    return FunctionRegistry(tmp_path / "state")


@pytest.fixture
def make_function(registry: FunctionRegistry, tmp_path: Path) -> Callable[..., FunctionRegistry]:
    """make_function(name, tag=..., **settings): a Python function with `tag` as its code."""

    def make(name: str, tag: str = "v1", **settings: object) -> FunctionRegistry:
        code = write_python_function(tmp_path / "code" / name, tag)
        registry.create(name, code, [sys.executable, "worker.py"], **settings)  # type: ignore[arg-type]
        return registry

    return make


@pytest.fixture
async def gateway(registry: FunctionRegistry) -> AsyncIterator[FunctionGateway]:
    async with FunctionGateway(registry) as started:
        yield started


def client(service: str, gateway: FunctionGateway):
    return boto3.session.Session().client(
        service,
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )


async def in_thread(call: Callable[..., object], *args: object, **kwargs: object):
    """A blocking SDK call, off the event loop that runs the gateway."""
    return await asyncio.to_thread(call, *args, **kwargs)


def alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
