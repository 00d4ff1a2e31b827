"""The two fleets of a Server blue/green deployment and the group's membership after one.

Blue is the group's current fleet: its workspace instances (by tags), or, once a blue/green
deployment succeeded, the green fleet that deployment left in service. Green is either
discovered (workspace instances selected by the group's green tag filters) or copied: one new
local instance per blue one, in its own folder under the state folder, with the same
variables except the load balancer's port variable, which gets a port of its own. The group's
membership is kept in `<state>/bluegreen/<app>.<group>.json` (names and ports only, never a
variable's value), so the next deployment's blue is the fleet this one left serving.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.model import GreenFleetAction
from engine.private_files import private_file, private_folder
from engine.workspace import Workspace
from engine.workspace.model import BlueGreenConfig, Instance
from engine.workspace.paths import default_root
from engine.workspace.secrets import EnvValue
from engine.workspace.tags import matches_any


class FleetError(Exception):
    """The fleets cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Copy:
    """A copied instance: its source instance and its own port."""

    name: str
    source: str
    port: int


@dataclass(frozen=True)
class Fleets:
    blue: tuple[Instance, ...]
    green: tuple[Instance, ...]
    copied: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in (*self.green, *self.blue))

    def workspace(self, workspace: Workspace) -> Workspace:
        """`workspace` with the copied instances in it, so targets can be made for them."""
        extra = {i.name: i for i in (*self.blue, *self.green) if i.name not in workspace.instances}
        return replace(workspace, instances={**workspace.instances, **extra})


class Membership:
    """Which instances are the group's fleet, and the copies among them (one JSON file)."""

    def __init__(self, workspace: Workspace, app: str, group: str) -> None:
        self.workspace = workspace
        self.app, self.group = app, group
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{app}.{group}")
        self.path = workspace.state_dir / "bluegreen" / f"{name}.json"

    def _read(self) -> tuple[list[str] | None, dict[str, Copy]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None, {}
        except (OSError, ValueError) as error:
            raise FleetError(
                f"{self.path} cannot be read ({error}): remove it to make the group's tagged "
                "instances its fleet again"
            ) from None
        copies = {c["name"]: Copy(c["name"], c["source"], int(c["port"])) for c in data["copies"]}
        return list(data["live"]), copies

    def copies(self) -> dict[str, Copy]:
        return self._read()[1]

    def live(self) -> tuple[Instance, ...]:
        """The group's current fleet."""
        names, _ = self._read()
        if names is None:
            return self.workspace.group_instances(self.app, self.group)
        return self.named(names)

    def live_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.live())

    def named(self, names: Sequence[str]) -> tuple[Instance, ...]:
        """Instances by name: the workspace's, or copies this file records."""
        copies = self._read()[1]
        found = []
        for name in names:
            if name in copies:
                found.append(self.instance_of(copies[name]))
            elif name in self.workspace.instances:
                found.append(self.workspace.instances[name])
            else:
                raise FleetError(
                    f"instance {name}, in service for {self.app}/{self.group} since its last "
                    f"blue/green deployment, is no longer in {self.workspace.path}: put it "
                    f"back, or remove {self.path} to use the group's tagged instances"
                )
        return tuple(found)

    def instance_of(self, copy: Copy) -> Instance:
        source = self.workspace.instances.get(copy.source)
        if source is None:
            raise FleetError(
                f"copied instance {copy.name} was made from {copy.source}, which is no longer "
                f"in {self.workspace.path}: put it back, or remove {self.path}"
            )
        return copied_instance(self.workspace, source, copy, self.port_env())

    def port_env(self) -> str:
        balancer = self.workspace.group(self.app, self.group).load_balancer
        return balancer.port_env if balancer is not None else "PORT"

    def save(self, live: Sequence[str], copies: dict[str, Copy]) -> None:
        """Record the group's fleet and every copy still on disk."""
        kept = list(copies.values())
        private_folder(self.path.parent)
        partial = self.path.with_suffix(".partial")
        private_file(partial)
        partial.write_text(
            json.dumps(
                {
                    "live": list(live),
                    "copies": [{"name": c.name, "source": c.source, "port": c.port} for c in kept],
                },
                indent=1,
            )
        )
        partial.replace(self.path)


def copied_instance(workspace: Workspace, source: Instance, copy: Copy, port_env: str) -> Instance:
    environment = dict(source.environment)
    environment[port_env] = EnvValue(str(copy.port))
    return Instance(
        copy.name,
        dict(source.tags),
        "local",
        default_root(workspace.folder, copy.name),
        environment,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose_fleets(
    workspace: Workspace, app: str, group: str, config: BlueGreenConfig, deployment_id: str
) -> tuple[Fleets, dict[str, Copy]]:
    """Blue (the group's fleet now) and green (discovered or copied) for a new deployment."""
    membership = Membership(workspace, app, group)
    blue = membership.live()
    if not blue:
        raise FleetError(
            f"deployment group {app}/{group} has no instances to replace: tag instances to "
            "match its tag_filters"
        )
    copies = membership.copies()
    if config.green_fleet == GreenFleetAction.DISCOVER_EXISTING:
        blue_names = {i.name for i in blue}
        green = tuple(
            i
            for i in workspace.instances.values()
            if matches_any(config.green_tag_filters, i.tags) and i.name not in blue_names
        )
        if not green:
            filters = ", ".join(str(f) for f in config.green_tag_filters)
            raise FleetError(
                f"no instance matches the green fleet's tag_filters ({filters}) of {app}/{group}: "
                "tag the replacement instances, or use COPY_AUTO_SCALING_GROUP"
            )
        return Fleets(blue, green), copies
    ssh = [i.name for i in blue if i.transport != "local"]
    if ssh:
        raise FleetError(
            f"COPY_AUTO_SCALING_GROUP copies local instances only; {', '.join(ssh)} "
            "are reached over SSH: use DISCOVER_EXISTING with tagged replacement hosts"
        )
    port_env = membership.port_env()
    made = []
    for n, instance in enumerate(blue):
        source = copies[instance.name].source if instance.name in copies else instance.name
        port = free_port() if config.copy_first_port is None else config.copy_first_port + n
        if port > 65535:
            raise FleetError(
                f"first_port {config.copy_first_port} leaves no port for copy {n + 1}: "
                "choose a lower first_port"
            )
        copy = Copy(f"{source}-{deployment_id}", source, port)
        copies[copy.name] = copy
        made.append(copied_instance(workspace, workspace.instances[source], copy, port_env))
    return Fleets(blue, tuple(made), tuple(i.name for i in made)), copies


def remove_copy(instance: Instance) -> None:
    """Delete a copied instance's folder (after its ApplicationStop)."""
    if instance.root is not None and Path(instance.root).exists():
        shutil.rmtree(instance.root, ignore_errors=True)
