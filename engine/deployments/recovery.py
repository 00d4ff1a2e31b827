"""After an engine process died mid-deployment: end what it left running, settle the records.

The journal says which hook scripts started (with their process groups) and which lifecycle
events finished; a script whose event never finished may still be running on a local instance.
"""

from __future__ import annotations

from engine import events as ev
from engine.host.processes import end_process_group, group_members
from engine.model import FAILED, IN_PROGRESS, PENDING, SKIPPED, STOPPED, Diagnostics
from engine.store import Store

INTERRUPTED = "The engine process stopped during this event"


def unfinished_scripts(store: Store, deployment_id: str) -> list[ev.ScriptStarted]:
    """Scripts started whose lifecycle event has no finish after them."""
    started: dict[tuple[str, str], ev.ScriptStarted] = {}
    for entry in store.journal(deployment_id, limit=10_000_000):
        event = entry.event
        if isinstance(event, ev.ScriptStarted):
            started[(event.instance, event.event)] = event
        elif isinstance(event, ev.LifecycleEventFinished):
            started.pop((event.instance, event.event), None)
    return list(started.values())


async def end_leftover_scripts(store: Store, deployment_id: str, grace: float) -> list[int]:
    """SIGTERM, then SIGKILL, the process groups of scripts a dead engine left running."""
    ended = []
    for script in unfinished_scripts(store, deployment_id):
        if script.pgid and group_members(script.pgid):
            await end_process_group(script.pgid, grace)
            ended.append(script.pgid)
    return ended


def settle_interrupted(store: Store, deployment_id: str, now: float, *, reason: str) -> None:
    """Mark what was running as Failed and what never started as Skipped."""
    deployment = store.get_deployment(deployment_id)
    batch: list[ev.Event] = []
    for instance in deployment.instances:
        for event in instance.events:
            if event.status == IN_PROGRESS:
                diagnostics = Diagnostics("UnknownError", None, f"{INTERRUPTED}; {reason}")
                batch.append(
                    ev.LifecycleEventFinished(
                        deployment_id, now, instance.name, event.name, FAILED, diagnostics
                    )
                )
            elif event.status == PENDING:
                batch.append(
                    ev.LifecycleEventFinished(
                        deployment_id, now, instance.name, event.name, SKIPPED
                    )
                )
        if instance.status == IN_PROGRESS:
            batch.append(ev.InstanceStatusChanged(deployment_id, now, instance.name, FAILED))
        elif instance.status == PENDING:
            batch.append(ev.InstanceStatusChanged(deployment_id, now, instance.name, SKIPPED))
    batch.append(ev.DeploymentStatusChanged(deployment_id, now, STOPPED, "MANUAL_STOP", reason))
    store.append_many(batch)
