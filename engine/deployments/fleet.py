"""From a workspace's group to what a deployment runs on: ids, targets and their order."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

from engine.configs import order_instances
from engine.model import FAILED
from engine.store import Store
from engine.targets.base import Target
from engine.targets.local import LocalTarget
from engine.workspace import Workspace


def new_deployment_id() -> str:
    """`d-` and nine upper-case letters and digits, like CodeDeploy's."""
    return "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9))


def group_id(application: str, group: str) -> str:
    """The deployment group id the agent names its folders and cleanup files after."""
    return f"{application}.{group}"


class UnknownInstances(Exception):
    pass


def build_targets(workspace: Workspace, names: Sequence[str]) -> dict[str, Target]:
    """A target per instance name; local folders for now (SSH comes with its transport)."""
    missing = [n for n in names if n not in workspace.instances]
    if missing:
        raise UnknownInstances(
            f"instances {', '.join(missing)} are no longer in {workspace.path}; put them back "
            "or stop the deployment"
        )
    targets: dict[str, Target] = {}
    settings = workspace.settings
    for name in names:
        instance = workspace.instances[name]
        if instance.transport != "local":
            raise UnknownInstances(
                f"instance {name} uses transport {instance.transport}, which this version "
                "cannot deploy to yet"
            )
        assert instance.root is not None
        targets[name] = LocalTarget(
            name,
            instance.root,
            instance.hook_environment(),
            max_revisions=settings.max_revisions,
            kill_grace_seconds=settings.kill_grace_seconds,
        )
    return targets


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
    old revision, current revision; with `outdated_only`, only those not on the revision."""
    states = store.instance_states(application, group)
    names = [i.name for i in workspace.group_instances(application, group)]
    if outdated_only:
        names = [
            n for n in names if (s := states.get(n)) is None or s.revision_sha256 != revision_sha256
        ]

    def health(name: str) -> str:
        state = states.get(name)
        if state is None or state.last_status is None or state.last_status == FAILED:
            return "Unhealthy"
        if state.revision_sha256 is None:
            return "Unknown"
        return "Current" if state.revision_sha256 == revision_sha256 else "Old"

    return list(order_instances(names, health))
