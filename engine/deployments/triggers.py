"""Triggers: deployment and instance notifications (docs/codedeploy-service.md#triggers).

A trigger sends its messages to one target: a webhook (HTTP POST of the JSON), a command (the
JSON on its stdin) or a file (one JSON line appended). Messages have CodeDeploy's fields, with
times as epoch-second strings. Delivery never blocks the deployment: failures become notes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.model import DeploymentInfo, InstanceInfo
from engine.targets.local import ProcessWatch
from engine.workspace import Trigger

DELIVERY_TIMEOUT_SECONDS = 15.0


def _stamp(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def deployment_message(trigger: str, deployment: DeploymentInfo) -> dict[str, Any]:
    overview = deployment.overview()
    message: dict[str, Any] = {
        "region": "local",
        "accountId": "local",
        "eventTriggerName": trigger,
        "applicationName": deployment.application,
        "deploymentId": deployment.id,
        "deploymentGroupName": deployment.deployment_group,
        "createTime": _stamp(deployment.create_time),
        "completeTime": _stamp(deployment.complete_time),
        "deploymentOverview": {
            key: str(overview.get(key, 0))
            for key in ("Failed", "InProgress", "Pending", "Skipped", "Succeeded")
        },
        "status": deployment.status,
    }
    if deployment.error_code:
        message["errorInformation"] = {
            "ErrorCode": deployment.error_code,
            "ErrorMessage": deployment.error_message or "",
        }
    return message


def instance_message(
    trigger: str, deployment_id: str, instance: InstanceInfo, now: float
) -> dict[str, Any]:
    return {
        "region": "local",
        "accountId": "local",
        "eventTriggerName": trigger,
        "deploymentId": deployment_id,
        "instanceId": instance.name,
        "lastUpdatedAt": _stamp(now),
        "instanceStatus": instance.status,
        "lifecycleEvents": [
            {
                "LifecycleEvent": event.name,
                "LifecycleEventStatus": event.status,
                "StartTime": _stamp(event.start_time),
                "EndTime": _stamp(event.end_time),
            }
            for event in instance.events
        ],
    }


class TriggerDispatcher:
    """Sends messages to the triggers that subscribe to an event, in the background: each
    trigger gets its messages one at a time, in the order they happened."""

    def __init__(
        self,
        triggers: Sequence[Trigger],
        on_problem: Callable[[str], object],
        watch: ProcessWatch | None = None,
    ) -> None:
        self.triggers = tuple(triggers)
        self.on_problem = on_problem
        self.watch = watch  # told of each command's process group while it runs
        self._queues: dict[int, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}

    def wants(self, event: str) -> bool:
        return any(event in t.events for t in self.triggers)

    def fire(self, event: str, build: Callable[[str], dict[str, Any]]) -> None:
        for index, trigger in enumerate(self.triggers):
            if event not in trigger.events:
                continue
            queue = self._queues.setdefault(index, asyncio.Queue())
            queue.put_nowait((event, build(trigger.name)))
            worker = self._workers.get(index)
            if worker is None or worker.done():
                self._workers[index] = asyncio.create_task(self._work(trigger, queue))

    async def _work(
        self, trigger: Trigger, queue: asyncio.Queue[tuple[str, dict[str, Any]]]
    ) -> None:
        while not queue.empty():
            event, message = queue.get_nowait()
            await self._deliver(trigger, event, message)

    async def drain(self) -> None:
        """Wait for deliveries in flight (each is bounded by its own timeout)."""
        while any(not worker.done() for worker in self._workers.values()):
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _deliver(self, trigger: Trigger, event: str, message: dict[str, Any]) -> None:
        body = json.dumps(message)
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_SECONDS):
                if trigger.webhook:
                    await asyncio.to_thread(_post, trigger.webhook, body)
                elif trigger.command:
                    await _run_command(trigger.command, body, self.watch)
                elif trigger.file:
                    await asyncio.to_thread(_append, trigger.file, body)
        except TimeoutError:
            self.on_problem(
                f"trigger {trigger.name} ({event}) got no answer within "
                f"{DELIVERY_TIMEOUT_SECONDS:.0f} s"
            )
        except Exception as error:  # any delivery problem is reported, never raised
            self.on_problem(f"trigger {trigger.name} ({event}) failed: {error}")


def _post(url: str, body: str) -> None:
    import urllib.request  # only a group with an http trigger pays for it

    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise RuntimeError(f"{url} answered {response.status}")


def _append(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(body + "\n")


async def _run_command(
    command: tuple[str, ...] | str, body: str, watch: ProcessWatch | None = None
) -> None:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    if watch is not None:
        watch.watch(proc.pid)
    try:
        _, stderr = await proc.communicate(body.encode())
    except asyncio.CancelledError:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        raise
    finally:
        if watch is not None:
            watch.forget(proc.pid)
    if proc.returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"command exited with {proc.returncode} {detail[0]}".strip())
