"""From a workspace's group to what a deployment runs on: ids, targets and their order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.host.hashing import sha256_file
from engine.targets.base import AgentSettings, Target
from engine.targets.local import LocalTarget, ProcessWatch
from engine.workspace import Workspace

if TYPE_CHECKING:
    import tarfile


def group_id(application: str, group: str) -> str:
    """The deployment group id the agent names its folders and cleanup files after."""
    return f"{application}.{group}"


class UnknownInstances(Exception):
    pass


def build_targets(
    workspace: Workspace, names: Sequence[str], watch: ProcessWatch | None = None
) -> dict[str, Target]:
    """A target per instance name: a local folder (its hooks' process groups told to
    `watch`), or an SSH host."""
    missing = [n for n in names if n not in workspace.instances]
    if missing:
        raise UnknownInstances(
            f"instances {', '.join(missing)} are no longer in {workspace.path}; put them back "
            "or stop the deployment"
        )
    targets: dict[str, Target] = {}
    settings = workspace.settings
    limiter = asyncio.Semaphore(settings.ssh_max_parallel)
    bundles = SshBundles(workspace.state_dir)
    for name in names:
        instance = workspace.instances[name]
        agent = AgentSettings(
            instance.hook_environment(),
            tuple(sorted(k for k, v in instance.environment.items() if v.secret)),
            settings.max_revisions,
            settings.kill_grace_seconds,
            settings.max_bundle_bytes,
        )
        if instance.ssh is not None:
            # imported here: asyncssh costs start-up time and memory local fleets do not need
            from engine.targets.ssh import SshTarget
            from engine.targets.ssh_connection import SshEndpoint

            ssh = instance.ssh
            targets[name] = SshTarget(
                name,
                SshEndpoint(
                    ssh.host,
                    ssh.port,
                    ssh.user or None,
                    ssh.key_file,
                    ssh.proxy_jump,
                    ssh.known_hosts_files(workspace.state_dir),
                    name,
                ),
                agent,
                agent_root=ssh.agent_root,
                python=ssh.python,
                fs_root=ssh.fs_root,
                limiter=limiter,
                bundle_file=bundles.file_for,
            )
            continue
        assert instance.root is not None
        targets[name] = LocalTarget(name, instance.root, agent, watch=watch)
    return targets


class SshBundles:
    """What is sent to SSH hosts: an archive as is, a folder as a tar made once per revision."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "revisions"

    def file_for(self, command: dict[str, Any]) -> tuple[Path, str, str]:
        bundle = command["bundle"]
        path, kind = Path(bundle["path"]), bundle["type"]
        if kind != "directory":
            return path, kind, sha256_file(str(path))
        tar = self.folder / f"{bundle['sha256']}.ssh.tar"
        if not tar.exists():
            partial = tar.with_suffix(".partial")
            write_tar(path, partial)
            partial.rename(tar)
        return tar, "tar", sha256_file(str(tar))


def write_tar(folder: Path, target: Path) -> None:
    """A tar of `folder`'s contents in sorted order, owners left out (the host's user owns)."""
    import tarfile  # only SSH deployments send a tar

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(target, "w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False, filter=clean)
