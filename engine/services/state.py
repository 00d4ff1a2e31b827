"""A service's state on disk, for CLI commands to read while (or after) a runtime runs it: the
service's listeners, weights, target groups and task sets in `service.json`, and the registered
task definitions in `task-definitions.json`, each written whole or not at all."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.json_files import write_json
from engine.services.model import ServiceError, TaskDefinition, TaskSetInfo


def services_dir(state_dir: Path) -> Path:
    """Where task definitions are registered and each service keeps its state folder."""
    return Path(state_dir) / "services"


SERVICE_FILE = "service.json"
DEFINITIONS_FILE = "task-definitions.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ServiceError(f"{path}: not valid JSON ({error}); fix or remove it") from None
    if not isinstance(data, dict):
        raise ServiceError(f"{path}: expected a JSON object; fix or remove it")
    return data


@dataclass(frozen=True)
class ServiceState:
    """What `service.json` says: the listeners' addresses and weights by target group, which
    target group is primary, the task sets, and whether a runtime is running the service."""

    name: str
    production: tuple[str, int]
    test: tuple[str, int] | None
    production_weights: Mapping[str, int]
    test_weights: Mapping[str, int]
    primary_target_group: str
    task_sets: tuple[TaskSetInfo, ...]
    running: bool
    updated: float


def load_service_state(state_dir: Path) -> ServiceState:
    """The service state written by a runtime under `state_dir`; ServiceError if none is."""
    path = Path(state_dir) / SERVICE_FILE
    if not path.exists():
        raise ServiceError(f"{path}: no service state there; start the service first")
    data = read_json(path)
    try:
        test = data["listeners"].get("test")
        return ServiceState(
            name=data["service"],
            production=(
                data["listeners"]["production"]["host"],
                data["listeners"]["production"]["port"],
            ),
            test=(test["host"], test["port"]) if test else None,
            production_weights=MappingProxyType(dict(data["listeners"]["production"]["weights"])),
            test_weights=MappingProxyType(dict(test["weights"])) if test else MappingProxyType({}),
            primary_target_group=data["primaryTargetGroup"],
            task_sets=tuple(TaskSetInfo.from_json(t) for t in data["taskSets"]),
            running=data["running"],
            updated=data["updated"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ServiceError(
            f"{path}: not a service state deploydeck wrote ({error.__class__.__name__}: "
            f"{error}); remove it and start the service again"
        ) from None


class TaskDefinitions:
    """Registered task definitions under a state folder: registering a family again makes its
    next revision; a revision never changes once registered."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DEFINITIONS_FILE

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / ".definitions.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = read_json(self.path) if self.path.exists() else {}
            yield data
            write_json(self.path, data)

    def register(
        self,
        family: str,
        command: list[str] | tuple[str, ...],
        *,
        environment: Mapping[str, str] | None = None,
        container_port: int = 8080,
        desired_count: int = 1,
        health_check_path: str = "/",
        port_variable: str = "PORT",
        working_directory: str | None = None,
    ) -> TaskDefinition:
        """Register the next revision of `family` (1 for a new family)."""
        with self._locked() as data:
            revisions = data.setdefault(family, [])
            definition = TaskDefinition(
                family=family,
                revision=len(revisions) + 1,
                command=tuple(command),
                environment=MappingProxyType(dict(environment or {})),
                container_port=container_port,
                desired_count=desired_count,
                health_check_path=health_check_path,
                port_variable=port_variable,
                working_directory=working_directory,
            )
            revisions.append(definition.to_json())
        return definition

    def get(self, family: str, revision: int | None = None) -> TaskDefinition:
        """`family:revision`, or its latest revision."""
        data = read_json(self.path) if self.path.exists() else {}
        revisions = data.get(family)
        if not revisions:
            known = ", ".join(sorted(data)) or "none"
            raise ServiceError(
                f"no task definition family {family!r} is registered (registered: {known})"
            )
        if revision is None:
            revision = len(revisions)
        if not 1 <= revision <= len(revisions):
            raise ServiceError(
                f"task definition {family} has revisions 1 to {len(revisions)}, not {revision}"
            )
        return TaskDefinition.from_json(revisions[revision - 1])
