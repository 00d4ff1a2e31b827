"""The deployment-root layout of the CodeDeploy agent
(docs/codedeploy-agent.md#deployment-root-layout).

<root>/deployment-instructions/<group>_last_successful_install   "<root>/<group>/<id>", no newline
<root>/deployment-instructions/<group>_most_recent_install
<root>/deployment-instructions/<group>-cleanup                   JSON records of what Install placed
<root>/deployment-instructions/<group>-install.json              the last Install's instructions
<root>/deployment-logs/codedeploy-agent-deployments.log
<root>/<group>/<id>/bundle.tar                                   archive bundles only
<root>/<group>/<id>/deployment-archive/                          the unpacked revision
<root>/<group>/<id>/deployment-appspec.json                      the parsed appspec (deploydeck)
<root>/<group>/<id>/logs/scripts.log
"""

from __future__ import annotations

import os
from typing import Optional

ARCHIVE_DIR_NAME = "deployment-archive"
APPSPEC_JSON_NAME = "deployment-appspec.json"
PROGRAM_NAME = "codedeploy-agent"
# codedeploy-local's deployment group: its id (the folder under the root) and its name
DEFAULT_GROUP_ID = "default-local-deployment-group"
DEFAULT_GROUP_NAME = "LocalFleet"


RESERVED_NAMES = ("deployment-instructions", "deployment-logs")


def plain_name_problem(name: str) -> Optional[str]:
    """Why `name` (a deployment group id or deployment id) cannot be a folder directly under
    the root, or None: the agent deletes old revisions inside the group's folder."""
    if not name.strip():
        return "is empty"
    if name in (".", "..") or "/" in name or "\0" in name:
        return "is not a plain folder name"
    if name in RESERVED_NAMES:
        return "is a folder the agent keeps for itself"
    return None


class DeploymentRoot:
    """Paths under one agent root directory; stored paths keep `root_dir` exactly as given."""

    def __init__(self, root_dir: str) -> None:
        self.root_dir = root_dir

    @property
    def instructions_dir(self) -> str:
        return os.path.join(self.root_dir, "deployment-instructions")

    @property
    def deployment_logs_dir(self) -> str:
        return os.path.join(self.root_dir, "deployment-logs")

    @property
    def deployments_log(self) -> str:
        return os.path.join(self.deployment_logs_dir, PROGRAM_NAME + "-deployments.log")

    def group_dir(self, group_id: str) -> str:
        return os.path.join(self.root_dir, group_id)

    def deployment_dir(self, group_id: str, deployment_id: str) -> str:
        return os.path.join(self.root_dir, group_id, deployment_id)

    def last_successful_marker(self, group_id: str) -> str:
        return os.path.join(self.instructions_dir, group_id + "_last_successful_install")

    def most_recent_marker(self, group_id: str) -> str:
        return os.path.join(self.instructions_dir, group_id + "_most_recent_install")

    def cleanup_file(self, group_id: str) -> str:
        return os.path.join(self.instructions_dir, group_id + "-cleanup")

    def install_json(self, group_id: str) -> str:
        return os.path.join(self.instructions_dir, group_id + "-install.json")


def archive_dir(deployment_dir: str) -> str:
    return os.path.join(deployment_dir, ARCHIVE_DIR_NAME)


def bundle_file(deployment_dir: str) -> str:
    return os.path.join(deployment_dir, "bundle.tar")


def appspec_json(deployment_dir: str) -> str:
    return os.path.join(deployment_dir, APPSPEC_JSON_NAME)


def scripts_log(deployment_dir: str) -> str:
    return os.path.join(deployment_dir, "logs", "scripts.log")


def read_marker(path: str) -> Optional[str]:
    """The deployment directory a marker file names, chomped; None when there is no marker."""
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read()
    except FileNotFoundError:
        return None
    return value.rstrip("\r\n")


def write_atomically(path: str, content: str) -> None:
    """Replace `path` with `content` in one rename: a process that dies never leaves a torn
    file (no fsync: the engine's journal, not these markers, survives a power loss)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp-" + str(os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(tmp, path)
