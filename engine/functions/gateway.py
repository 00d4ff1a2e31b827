"""The invoke gateway: an HTTP server on a local port answering Lambda's Invoke and CodeDeploy's
PutLifecycleEventHookExecutionStatus as the AWS SDKs send them, so boto3, the AWS CLI and hook
code written for AWS work against it unchanged (pointed at it by endpoint URL).

- Lambda (REST JSON): POST /2015-03-31/functions/{name}/invocations[?Qualifier=q]; the name
  may be `name`, `name:qualifier` or an ARN. The qualifier is `$LATEST`, a version number or an
  alias, whose weights route the call (engine.functions.routing).
- CodeDeploy (JSON 1.1): POST / with X-Amz-Target: CodeDeploy_20141006.<Operation>.
- Function URLs: GET /urls/{name}[:{qualifier}][/path] invokes with an HTTP event, answering
  the result (200) or, when the function errors, 502, as Lambda's function URLs do: an `http`
  alarm or a browser can probe a function through its alias's weights.
Signatures are not checked: the gateway listens on loopback for local use.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from engine.clock import Clock, RealClock
from engine.traffic.http1 import BadMessage, keeps_alive, read_head, request_framing

from .hooks import HookExecutions, HookStatusError
from .meter import WRITE_SECONDS, ledger_entry, ledger_folder, write_ledger
from .registry import LATEST, Function, FunctionRegistry, NotFound, RegistryError
from .routing import AliasRouter
from .worker import Outcome, VersionPool

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_EVENT_PAYLOAD = 1024 * 1024
INVOKE_PREFIX = "/2015-03-31/functions/"
URL_PREFIX = "/urls/"
CODEDEPLOY_TARGET = "CodeDeploy_20141006."
REGION = "us-east-1"
ACCOUNT = "000000000000"


class ServiceError(Exception):
    """A Lambda service error: HTTP status, error code (x-amzn-ErrorType) and message."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True)
class InvokeResult:
    status: int  # 200 RequestResponse, 202 Event, 204 DryRun
    version: str  # the version that ran (X-Amz-Executed-Version)
    body: bytes
    function_error: bool = False
    log_tail: bytes = b""


def parse_function_name(raw: str, qualifier: str | None) -> tuple[str, str]:
    """(name, qualifier) from `name`, `name:q`, `acct:function:name[:q]` or a full ARN."""
    parts = raw.split(":")
    if raw.startswith("arn:"):
        if len(parts) not in (7, 8) or parts[5] != "function":
            raise ServiceError(400, "InvalidParameterValueException", f"bad function ARN {raw}")
        parts = parts[6:]
    elif len(parts) >= 3 and parts[1] == "function":
        parts = parts[2:]
    if len(parts) > 2 or not parts[0]:
        raise ServiceError(400, "InvalidParameterValueException", f"bad function name {raw!r}")
    name = parts[0]
    derived = parts[1] if len(parts) == 2 else None
    if derived is not None and qualifier is not None and derived != qualifier:
        raise ServiceError(
            400,
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return name, derived or qualifier or LATEST


class _Slots:
    """A function's concurrency: sync calls beyond the limit are refused, Event calls wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._freed = asyncio.Condition()

    def try_take(self) -> bool:
        if self.busy >= self.limit:
            return False
        self.busy += 1
        return True

    async def take(self) -> None:
        async with self._freed:
            await self._freed.wait_for(lambda: self.busy < self.limit)
            self.busy += 1

    async def give(self) -> None:
        self.busy -= 1
        async with self._freed:
            self._freed.notify()


class FunctionGateway:
    """Serves invocations of the registry's functions and hook status reports."""

    def __init__(
        self,
        registry: FunctionRegistry,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        window_seconds: float = 60.0,
    ) -> None:
        self.registry = registry
        self.clock = clock or RealClock()
        self.host, self.port = host, port
        self.window_seconds = window_seconds
        self.hooks = HookExecutions(self._invoke_hook, self.clock)
        self._server: asyncio.Server | None = None
        self._pools: dict[tuple[str, str, str], VersionPool] = {}
        self._routers: dict[tuple[str, str], AliasRouter] = {}
        self._slots: dict[str, _Slots] = {}
        self._cache: dict[str, tuple[int, Function]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._retired: list[VersionPool] = []
        self._unwritten: set[str] = set()  # functions whose routed calls are not in a ledger yet
        self._ledgers: set[Path] = set()
        self._flush: asyncio.TimerHandle | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.registry.record_gateway(self.url)
        return self.url

    def worker_environment(self, function: str, version: str, timeout: float) -> dict[str, str]:
        """What every worker gets: Lambda's variables and this gateway as the AWS endpoint."""
        return {
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_LAMBDA": self.url,
            "AWS_ENDPOINT_URL_CODEDEPLOY": self.url,
            "AWS_ACCESS_KEY_ID": "deploydeck",
            "AWS_SECRET_ACCESS_KEY": "deploydeck",
        }

    # -- invoking

    def _function(self, name: str) -> Function:
        stamp = self.registry.mtime(name)
        cached = self._cache.get(name)
        if cached is None or cached[0] != stamp:
            try:
                function = self.registry.get(name)
            except NotFound:
                raise ServiceError(404, "ResourceNotFoundException", _not_found(name)) from None
            except RegistryError as error:
                raise ServiceError(500, "ServiceException", str(error)) from None
            self._cache[name] = cached = (stamp, function)
        return cached[1]

    def resolve(self, name: str, qualifier: str) -> tuple[Function, str, str]:
        """(function, version to run, alias or "") for one call, routing an alias by weight."""
        function = self._function(name)
        if qualifier == LATEST or qualifier.isdigit():
            if qualifier != LATEST and qualifier not in function.versions:
                raise ServiceError(404, "ResourceNotFoundException", _not_found(name, qualifier))
            return function, qualifier, ""
        alias = function.aliases.get(qualifier)
        if alias is None:
            raise ServiceError(404, "ResourceNotFoundException", _not_found(name, qualifier))
        key = (name, qualifier)
        router = self._routers.get(key)
        if router is None:
            router = self._routers[key] = AliasRouter(self.clock, self.window_seconds)
        version = router.route(alias.weights())
        self._routed(name)
        return function, version, qualifier

    def _routed(self, name: str) -> None:
        """Note a routed call: the function's ledger is rewritten within WRITE_SECONDS."""
        self._unwritten.add(name)
        if self._flush is None and self._server is not None and self._server.is_serving():
            self._flush = asyncio.get_running_loop().call_later(WRITE_SECONDS, self.write_ledgers)

    def write_ledgers(self) -> None:
        """Write each function's actual-weight window counts for readers in other processes."""
        self._flush = None
        names, self._unwritten = self._unwritten, set()
        for name in names:
            path = ledger_folder(self.registry.root, name) / f"{os.getpid()}-{self.port}.json"
            aliases = {
                a: ledger_entry(r.measured) for (n, a), r in self._routers.items() if n == name
            }
            try:
                write_ledger(path, aliases)
            except OSError:
                continue  # a full or read-only disk costs the gauge, never a call
            self._ledgers.add(path)

    def measured_counts(self, name: str, alias: str) -> dict[str, int]:
        """The alias's calls per version in the actual-weight window (since its last shift)."""
        router = self._routers.get((name, alias))
        return router.measured.counts() if router else {}

    def actual_weights(self, name: str, alias: str) -> dict[str, float]:
        """Each version's share of the alias's calls in the recent window."""
        router = self._routers.get((name, alias))
        return router.recent.shares() if router else {}

    def routed_counts(self, name: str, alias: str) -> dict[str, int]:
        router = self._routers.get((name, alias))
        return router.recent.counts() if router else {}

    async def invoke(
        self,
        function_name: str,
        payload: bytes = b"",
        qualifier: str | None = None,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
    ) -> InvokeResult:
        """One invocation, as the HTTP path does it; raises ServiceError when refused. With
        `log_type="Tail"` the result carries the last 4 KB of the worker's stderr."""
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            raise ServiceError(
                400, "InvalidParameterValueException", f"bad invocation type {invocation_type}"
            )
        limit = MAX_EVENT_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            raise ServiceError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the Invoke operation",
            )
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as error:
            raise ServiceError(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {error}",
            ) from None
        name, qual = parse_function_name(function_name, qualifier)
        function, version, _alias = self.resolve(name, qual)
        if invocation_type == "DryRun":
            return InvokeResult(204, version, b"")
        slots = self._slots.get(name)
        if slots is None:
            slots = self._slots[name] = _Slots(function.concurrency)
        slots.limit = function.concurrency  # a changed limit applies from this call on
        if invocation_type == "Event":
            task = asyncio.create_task(self._run_event(slots, function, version, qual, event))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return InvokeResult(202, version, b"")
        if not slots.try_take():
            raise ServiceError(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        try:
            outcome = await self._call(function, version, qual, event, log_type == "Tail")
        finally:
            await slots.give()
        return InvokeResult(200, version, outcome.body, outcome.function_error, outcome.log_tail)

    async def _run_event(
        self, slots: _Slots, function: Function, version: str, qual: str, event: Any
    ) -> Outcome | None:
        await slots.take()
        try:
            return await self._call(function, version, qual, event)
        except Exception:  # nobody awaits an Event call's result; keep it off the console
            return None
        finally:
            await slots.give()

    async def _call(
        self, function: Function, version: str, qual: str, event: Any, tail: bool = False
    ) -> Outcome:
        spec = function.spec(version, self.registry.store)
        key = (function.name, version, spec.code_sha256 or str(spec.code))
        pool = self._pools.get(key)
        if pool is None or (version == LATEST and pool.spec != spec):
            if pool is not None:  # $LATEST's settings changed: its warm workers are stale
                self._retired = [p for p in self._retired if p.pids()] + [pool]
                await pool.retire()
            env = self.worker_environment(function.name, version, spec.timeout)
            pool = self._pools[key] = VersionPool(spec, env)
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}:{qual}"
        context = {
            "functionName": function.name,
            "functionVersion": version,
            "invokedFunctionArn": arn,
            "awsRequestId": str(uuid.uuid4()),
            "deadlineMs": int((self.clock.now() + spec.timeout) * 1000),
        }
        return await pool.call(event, context, tail)

    async def _invoke_hook(self, hook: str, payload: dict[str, str]) -> None:
        # Asynchronous, as CodeDeploy invokes hooks: the result is the status report.
        await self.invoke(hook, json.dumps(payload).encode(), invocation_type="Event")

    def warm_workers(self, name: str) -> dict[str, int]:
        """Live worker processes per version of a function."""
        return {v: p.warm for (n, v, _), p in self._pools.items() if n == name and p.warm}

    def worker_pids(self) -> list[int]:
        """The process ids (= process group ids) of every live worker."""
        return [pid for pool in [*self._pools.values(), *self._retired] for pid in pool.pids()]

    # -- HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await read_head(reader)
                if head is None:
                    break
                kind, length = request_framing(head)
                keep = keeps_alive(head, head.first[2])
                if kind == "chunked":
                    raise BadMessage("chunked request bodies are not supported")
                if length > MAX_SYNC_PAYLOAD:  # refused unread; the connection cannot go on
                    keep = False
                    error = ServiceError(
                        413,
                        "RequestTooLargeException",
                        f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes",
                    )
                    status, headers, payload = _lambda_error(error, str(uuid.uuid4()))
                else:
                    body = await reader.readexactly(length) if kind == "length" else b""
                    try:
                        status, headers, payload = await self._respond(head.first, head, body)
                    except Exception as error:  # answered, never a traceback on the console
                        failure = ServiceError(500, "ServiceException", f"internal error: {error}")
                        status, headers, payload = _lambda_error(failure, str(uuid.uuid4()))
                lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
                lines += [f"{k}: {v}" for k, v in headers]
                lines += [f"Content-Length: {len(payload)}"]
                lines += ["Connection: keep-alive" if keep else "Connection: close"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if not keep:
                    break
        except (BadMessage, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the gateway is closing; asyncio's stream callback must not see it raised
        finally:
            self._connections.discard(task)
            writer.close()

    async def _respond(
        self, first: tuple[str, str, str], head: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        method, target, _ = first
        parts = urlsplit(target)
        request_id = str(uuid.uuid4())
        amz_target = head.get("x-amz-target") or ""
        if method == "POST" and parts.path == "/" and amz_target.startswith(CODEDEPLOY_TARGET):
            return self._codedeploy(amz_target[len(CODEDEPLOY_TARGET) :], body, request_id)
        path = parts.path
        if (
            method == "POST"
            and path.startswith(INVOKE_PREFIX)
            and path.endswith("/invocations")
            and path.count("/") == 4
        ):
            raw_name = unquote(path[len(INVOKE_PREFIX) : -len("/invocations")])
            qualifier = parse_qs(parts.query).get("Qualifier", [None])[0]
            try:
                result = await self.invoke(
                    raw_name,
                    body,
                    qualifier,
                    head.get("x-amz-invocation-type") or "RequestResponse",
                    head.get("x-amz-log-type") or "None",
                )
            except ServiceError as error:
                return _lambda_error(error, request_id)
            headers = _invoke_headers(request_id, result)
            if result.function_error:
                headers.append(("X-Amz-Function-Error", "Unhandled"))
            if (head.get("x-amz-log-type") or "") == "Tail":
                headers.append(("X-Amz-Log-Result", base64.b64encode(result.log_tail).decode()))
            return result.status, headers, result.body
        if method == "GET" and path.startswith(URL_PREFIX):
            return await self._function_url(path, request_id)
        unknown = ServiceError(404, "UnknownOperationException", f"no operation at {method} {path}")
        return _lambda_error(unknown, request_id)

    async def _function_url(
        self, path: str, request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """GET /urls/{name}[:{qualifier}][/rest]: one call with an HTTP event (method, path);
        the function's result (200), or 502 when it errors, as a Lambda function URL answers."""
        target, _, rest = path[len(URL_PREFIX) :].partition("/")
        event = {"rawPath": "/" + rest, "requestContext": {"http": {"method": "GET"}}}
        try:
            result = await self.invoke(unquote(target), json.dumps(event).encode())
        except ServiceError as error:
            return _lambda_error(error, request_id)
        return (
            (502 if result.function_error else 200),
            _invoke_headers(request_id, result),
            result.body,
        )

    def _codedeploy(
        self, operation: str, body: bytes, request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        if operation != "PutLifecycleEventHookExecutionStatus":
            reply = {"__type": "UnknownOperationException", "message": f"{operation} is not served"}
            return 400, headers, json.dumps(reply).encode()
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as error:
            reply = {"__type": "SerializationException", "message": f"bad JSON body: {error}"}
            return 400, headers, json.dumps(reply).encode()
        try:
            execution_id = self.hooks.put_status(
                str(request.get("deploymentId") or ""),
                str(request.get("lifecycleEventHookExecutionId") or ""),
                str(request.get("status") or ""),
            )
        except HookStatusError as error:
            reply = {"__type": error.code, "message": error.message}
            return 400, headers, json.dumps(reply).encode()
        return 200, headers, json.dumps({"lifecycleEventHookExecutionId": execution_id}).encode()

    async def close(self) -> None:
        """Stop serving and end every worker's process group."""
        if self._server is not None:
            self._server.close()
            self.registry.record_gateway(None, forget=self.url)
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for path in self._ledgers:
            path.unlink(missing_ok=True)
        self._ledgers.clear()
        for task in list(self._connections) + list(self._background):
            task.cancel()
        await asyncio.gather(*self._connections, *self._background, return_exceptions=True)
        await self.hooks.close()
        pools, self._pools = [*self._pools.values(), *self._retired], {}
        self._retired = []
        await asyncio.gather(*(pool.close() for pool in pools))
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FunctionGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def _not_found(name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"Function not found: {arn}{':' + qualifier if qualifier else ''}"


def _invoke_headers(request_id: str, result: InvokeResult) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id),
        ("X-Amz-Executed-Version", result.version),
    ]


def _lambda_error(error: ServiceError, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", error.code),
    ]
    body = {"Type": "User", "Message": error.message, **error.extra}
    return error.status, headers, json.dumps(body).encode()
