"""Which of a group's instances a deployment targets, in CodeDeploy's scheduling order (a
command creating a deployment needs this, not the targets' machinery in fleet.py)."""

from __future__ import annotations

from engine.configs import order_instances
from engine.model import FAILED, SUCCEEDED
from engine.store import Store
from engine.workspace import Workspace


def ordered_targets(
    store: Store,
    workspace: Workspace,
    application: str,
    group: str,
    revision_sha256: str,
    *,
    outdated_only: bool = False,
) -> list[str]:
    """The group's instances in CodeDeploy's scheduling order: unhealthy, unknown revision,
    old revision, current revision; with `outdated_only`, only those not running the revision
    healthily (another revision, or its last deployment there failed:
    docs/codedeploy-service.md#minimum-healthy-hosts rule 9)."""
    states = store.instance_states(application, group)
    names = [i.name for i in workspace.group_instances(application, group)]
    if outdated_only:
        names = [
            n
            for n in names
            if (s := states.get(n)) is None
            or s.revision_sha256 != revision_sha256
            or s.last_status != SUCCEEDED
        ]

    def health(name: str) -> str:
        state = states.get(name)
        if state is None or state.last_status is None or state.last_status == FAILED:
            return "Unhealthy"
        if state.revision_sha256 is None:
            return "Unknown"
        return "Current" if state.revision_sha256 == revision_sha256 else "Old"

    return list(order_instances(names, health))
