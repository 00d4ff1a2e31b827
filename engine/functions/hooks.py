"""Lambda/ECS deployment hooks: a hook is a function invoked (asynchronously) with
{"DeploymentId", "LifecycleEventHookExecutionId"}; it must report Succeeded or Failed through
PutLifecycleEventHookExecutionStatus before a timeout (one hour by default), or the hook fails.

The checks on a report follow CodeDeploy's refusals (the names are its exception names); their
order is ours, since AWS does not document it: the deployment id, then the execution id, then
the status, then whether the hook already has a result.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from engine.clock import Clock

DEFAULT_HOOK_TIMEOUT_SECONDS = 3600.0
_DEPLOYMENT_ID = re.compile(r"^d-[A-Z0-9]{9}(-[A-Za-z0-9]+)?$")
Result = Literal["Succeeded", "Failed", "timeout"]
# invoke(function name with optional ":qualifier", payload) -> None; asynchronous invocation
Invoke = Callable[[str, dict[str, str]], Awaitable[None]]


class HookStatusError(Exception):
    """A refused status report; `code` is CodeDeploy's exception name for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HookExecution:
    execution_id: str
    deployment_id: str
    hook: str
    status: str = "InProgress"  # then Succeeded or Failed
    timed_out: bool = False
    invoke_error: str = ""  # why invoking the hook function failed, when it did
    done: asyncio.Event = field(default_factory=asyncio.Event, compare=False, repr=False)


class HookExecutions:
    """Starts hook functions and collects their reports."""

    def __init__(self, invoke: Invoke, clock: Clock) -> None:
        self._invoke = invoke
        self.clock = clock
        self._executions: dict[str, HookExecution] = {}
        self._deployments: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, deployment_id: str, hook: str) -> str:
        """Invoke `hook` (a function name, optionally `name:qualifier`) for the deployment;
        returns the execution id it must report against. Needs a running event loop."""
        if not _DEPLOYMENT_ID.match(deployment_id):
            raise ValueError(f"deployment id {deployment_id!r} is not of the form d-XXXXXXXXX")
        execution_id = secrets.token_hex(16)
        self._deployments.add(deployment_id)
        self._executions[execution_id] = HookExecution(execution_id, deployment_id, hook)
        payload = {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}
        task = asyncio.get_running_loop().create_task(self._run(execution_id, hook, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return execution_id

    async def _run(self, execution_id: str, hook: str, payload: dict[str, str]) -> None:
        try:
            await self._invoke(hook, payload)
        except Exception as error:  # kept as evidence; CodeDeploy still waits for a report
            current = self._executions[execution_id]
            self._executions[execution_id] = replace(current, invoke_error=str(error))

    def get(self, execution_id: str) -> HookExecution:
        return self._executions[execution_id]

    async def wait(
        self, execution_id: str, timeout: float = DEFAULT_HOOK_TIMEOUT_SECONDS
    ) -> Result:
        """The hook's result, or "timeout" when no report came within `timeout` seconds of
        the clock; a timed-out hook counts as Failed and later reports are refused."""
        execution = self._executions[execution_id]
        if execution.done.is_set():
            return "Failed" if execution.timed_out else execution.status  # type: ignore[return-value]
        reported = asyncio.ensure_future(execution.done.wait())
        expired = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({reported, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reported.cancel()
            expired.cancel()
        current = self._executions[execution_id]
        if current.done.is_set():
            return current.status  # type: ignore[return-value]
        self._executions[execution_id] = replace(current, status="Failed", timed_out=True)
        current.done.set()
        return "timeout"

    def put_status(self, deployment_id: str, execution_id: str, status: str) -> str:
        """Record a hook's report (PutLifecycleEventHookExecutionStatus); returns the
        execution id, or raises HookStatusError with CodeDeploy's exception name."""
        if not deployment_id:
            raise HookStatusError("DeploymentIdRequiredException", "Deployment ID is required.")
        if not _DEPLOYMENT_ID.match(deployment_id):
            raise HookStatusError(
                "InvalidDeploymentIdException",
                f"Specified deployment ID is not valid: {deployment_id}",
            )
        if deployment_id not in self._deployments:
            raise HookStatusError(
                "DeploymentDoesNotExistException", f"Deployment {deployment_id} does not exist."
            )
        execution = self._executions.get(execution_id or "")
        if execution is None or execution.deployment_id != deployment_id:
            raise HookStatusError(
                "InvalidLifecycleEventHookExecutionIdException",
                f"Lifecycle event hook execution {execution_id!r} does not exist "
                f"for deployment {deployment_id}.",
            )
        if status not in ("Succeeded", "Failed"):
            raise HookStatusError(
                "InvalidLifecycleEventHookExecutionStatusException",
                f"Status {status!r} is not valid: report Succeeded or Failed.",
            )
        if execution.done.is_set():
            already = "timed out" if execution.timed_out else f"reported {execution.status}"
            raise HookStatusError(
                "LifecycleEventAlreadyCompletedException",
                f"Lifecycle event hook execution {execution_id} already completed ({already}).",
            )
        self._executions[execution_id] = replace(execution, status=status)
        execution.done.set()
        return execution_id

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
