"""Warm workers: one long-running process per concurrent call slot of a function version.

The worker protocol (any language; see engine/functions/README.md):
- The gateway starts the function's command in its code folder, in its own process group, with
  the function's environment plus AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION,
  AWS_LAMBDA_FUNCTION_TIMEOUT, AWS_REGION and the AWS_ENDPOINT_URL_* of the gateway.
- It writes one request per line on the worker's stdin:
  {"event": <the payload JSON>, "context": {"functionName", "functionVersion",
   "invokedFunctionArn", "awsRequestId", "deadlineMs"}}
- The worker answers with exactly one line on stdout, before it reads the next request:
  {"result": <any JSON>}  or  {"error": {"errorType", "errorMessage", "stackTrace": [...]}}
- stdout carries the protocol only; logs go to stderr (kept for `X-Amz-Log-Type: Tail`).
A worker that exits is restarted on the next call (the call in flight fails with
Runtime.ExitError); one that overruns the function timeout is killed (Sandbox.Timedout).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.host.processes import end_process_group

from .registry import VersionSpec

MAX_LINE_BYTES = 8 * 1024 * 1024  # a 6 MB payload, JSON-escaped, plus its envelope
LOG_TAIL_BYTES = 4096
STOP_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """One call's result: the response body, or a function error (Lambda's Unhandled)."""

    body: bytes
    function_error: bool = False
    log_tail: bytes = b""


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Worker:
    """One warm process of a version; serves one call at a time."""

    def __init__(self, spec: VersionSpec, environment: dict[str, str]) -> None:
        self.spec = spec
        self.environment = environment
        self.proc: asyncio.subprocess.Process | None = None
        self._log: deque[bytes] = deque()
        self._log_bytes = 0
        self._log_seen = 0  # stderr bytes read since the worker started
        self._call_start = 0  # the value of _log_seen when the current call began
        self._log_pump: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        env = {**os.environ, **self.environment, **self.spec.environment}
        self.proc = await asyncio.create_subprocess_exec(
            *self.spec.command,
            cwd=self.spec.code,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=MAX_LINE_BYTES,
        )
        self._log_pump = asyncio.create_task(self._pump_log())

    async def _pump_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._log.append(chunk)
            self._log_bytes += len(chunk)
            self._log_seen += len(chunk)
            while self._log_bytes - len(self._log[0]) >= LOG_TAIL_BYTES:
                self._log_bytes -= len(self._log.popleft())

    def log_tail(self) -> bytes:
        """The last 4 KB of what the worker wrote to stderr during the current call."""
        during = min(LOG_TAIL_BYTES, self._log_seen - self._call_start)
        return b"".join(self._log)[-during:] if during > 0 else b""

    async def _settled_tail(self) -> bytes:
        """The log tail once what the worker wrote to stderr before answering is read: it is
        in the pipe already, so a few loop turns (poll, feed, pump) bring it in."""
        for _ in range(3):
            await asyncio.sleep(0)
        return self.log_tail()

    async def call(self, event: Any, context: dict[str, Any], tail: bool = False) -> Outcome:
        """Run one request; the worker is left dead (to be replaced) on any failure. With
        `tail`, the outcome carries the last 4 KB of the worker's stderr."""
        request = json.dumps({"event": event, "context": context}).encode() + b"\n"
        self._call_start = self._log_seen
        try:
            await self._send(request)
        except (ConnectionError, OSError) as error:
            message = f"cannot run {' '.join(self.spec.command)} in {self.spec.code}: {error}"
            return Outcome(_error("Runtime.InvalidEntrypoint", message), True)
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async with asyncio.timeout(self.spec.timeout):  # not wait_for: keeps a cancellation
                line = await self.proc.stdout.readline()
        except TimeoutError:
            await self.stop(grace=0.0)
            message = f"Task timed out after {self.spec.timeout:.2f} seconds"
            return Outcome(_error("Sandbox.Timedout", message), True, self.log_tail())
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as error:
            line = b"" if isinstance(error, ConnectionError) else b"\x00"
        if not line:
            code = await self._exit_code()
            await self.stop(grace=0.0)  # what the worker left running in its group
            return Outcome(
                _error("Runtime.ExitError", f"Runtime exited with error: {code}"),
                True,
                self.log_tail(),
            )
        try:
            reply = json.loads(line)
            if not isinstance(reply, dict) or not ({"result", "error"} & reply.keys()):
                raise ValueError("neither 'result' nor 'error'")
        except ValueError as error:
            await self.stop(grace=0.0)
            message = f"the worker's reply is not a protocol line ({error}): {line[:200]!r}"
            return Outcome(_error("Runtime.InvalidResponse", message), True, self.log_tail())
        if "error" in reply:
            body = reply["error"] if isinstance(reply["error"], dict) else {"errorMessage": ""}
            body.setdefault("errorType", "Error")
            body.setdefault("errorMessage", "")
            return Outcome(json.dumps(body).encode(), True, await self._settled_tail())
        result = json.dumps(reply["result"]).encode()
        return Outcome(result, False, await self._settled_tail() if tail else b"")

    async def _send(self, request: bytes) -> None:
        """Write a request, starting the worker first if needed; a warm worker found dead
        (it exited while idle, so it had not seen this request) is replaced once."""
        for attempt in (1, 2):
            if not self.alive:
                await self.stop(grace=0.0)
                await self.start()
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(request)
                await self.proc.stdin.drain()
                return
            except ConnectionError:
                if attempt == 2:
                    raise
                await self.stop(grace=0.0)
                self.proc = None

    async def _exit_code(self) -> str:
        assert self.proc is not None
        try:
            async with asyncio.timeout(5.0):
                code = await self.proc.wait()
        except TimeoutError:
            await self.stop(grace=0.0)
            return "closed its stdout"
        if code < 0:
            return f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
        return f"exit status {code}"

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """End the worker's whole process group (SIGTERM, `grace`, SIGKILL)."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            pass
        else:
            if grace <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
            await end_process_group(proc.pid, max(grace, 0.05))
        await proc.wait()
        if self._log_pump is not None:
            try:
                await asyncio.wait_for(self._log_pump, 1.0)
            except (TimeoutError, asyncio.CancelledError):
                self._log_pump.cancel()


class VersionPool:
    """The warm workers of one version: an idle one serves a call, else a new one starts."""

    def __init__(self, spec: VersionSpec, environment: dict[str, str]) -> None:
        self.spec = spec
        self.environment = environment
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._retired = False

    @property
    def warm(self) -> int:
        return sum(1 for w in self._all if w.alive)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._all if w.alive and w.proc is not None]

    async def retire(self) -> None:
        """No new calls come here: end the idle workers now, busy ones after their call."""
        self._retired = True
        idle, self._idle = self._idle, []
        self._all.difference_update(idle)
        await asyncio.gather(*(w.stop() for w in idle))

    async def call(self, event: Any, context: dict[str, Any], tail: bool = False) -> Outcome:
        worker = self._idle.pop() if self._idle else Worker(self.spec, self.environment)
        self._all.add(worker)
        try:
            outcome = await worker.call(event, context, tail)
        except BaseException:
            self._all.discard(worker)
            await asyncio.shield(worker.stop(grace=0.0))
            raise
        if worker.alive and not self._retired:
            self._idle.append(worker)
        else:
            self._all.discard(worker)
            await worker.stop()
        return outcome

    async def close(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), []
        await asyncio.gather(*(w.stop() for w in workers))
