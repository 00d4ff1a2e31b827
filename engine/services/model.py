"""The ECS-like platform's values: a service and its listeners, a task definition (frozen, with
a revision), and what a task set shows (CodeDeploy's ECSTaskSet fields)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServiceError(Exception):
    """The service runtime could not do what was asked; the message says what and what to do."""


class TaskSetStartError(ServiceError):
    """A task set's tasks did not all start and become healthy; `output` is the last output of
    the task that failed (none of the set's processes are left running)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message + (f"\n--- its last output ---\n{output}" if output else ""))
        self.output = output


def _check_name(what: str, name: str) -> None:
    if not NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} must be 1 to 255 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )


def _check_port(what: str, port: int | None, allow_zero: bool = True) -> None:
    if port is None:
        return
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port < 65536:
        raise ValueError(f"{what} {port!r} must be a port number between {low} and 65535")


@dataclass(frozen=True)
class Service:
    """A service: its name and the local ports of its production listener and optional test
    listener (0 picks a free port when the runtime starts)."""

    name: str
    production_port: int = 0
    test_port: int | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        _check_name("service", self.name)
        _check_port("production_port", self.production_port)
        _check_port("test_port", self.test_port)
        if self.test_port and self.test_port == self.production_port:
            raise ValueError(
                f"service {self.name}: the test listener needs its own port, not "
                f"{self.test_port} (the production listener's)"
            )

    @property
    def target_groups(self) -> tuple[str, str]:
        """The pair of target groups the service's task sets alternate between."""
        return f"{self.name}-tg-1", f"{self.name}-tg-2"


@dataclass(frozen=True)
class TaskDefinition:
    """What a task runs: `command` (argv) with `environment`, told its port through the
    `port_variable` env var (PORT by default) and `container_port` through CONTAINER_PORT (a
    command that starts a container publishes $PORT to it), `desired_count` tasks, healthy once
    GET `health_check_path` answers 2xx/3xx. Frozen: a change is a new revision."""

    family: str
    revision: int
    command: tuple[str, ...]
    environment: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    container_port: int = 8080
    desired_count: int = 1
    health_check_path: str = "/"
    port_variable: str = "PORT"
    working_directory: str | None = None

    def __post_init__(self) -> None:
        _check_name("task definition family", self.family)
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise ValueError(f"task definition {self.family}: revision must be a whole number")
        if self.revision < 1:
            raise ValueError(f"task definition {self.family}: revision must be 1 or more")
        if not self.command or not all(isinstance(a, str) and a for a in self.command):
            raise ValueError(
                f"task definition {self.family}: command must be a non-empty list of "
                "non-empty strings"
            )
        object.__setattr__(self, "command", tuple(self.command))
        env = dict(self.environment)
        for key, value in env.items():
            if not isinstance(key, str) or not ENV_NAME.match(key):
                raise ValueError(
                    f"task definition {self.family}: environment name {key!r} must be letters, "
                    "digits and '_', not starting with a digit"
                )
            if not isinstance(value, str):
                raise ValueError(
                    f"task definition {self.family}: environment {key} must be a string"
                )
        object.__setattr__(self, "environment", MappingProxyType(env))
        _check_port(f"task definition {self.family}: container_port", self.container_port, False)
        count = self.desired_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise ValueError(
                f"task definition {self.family}: desired_count must be a whole number from 1 "
                f"to 1000, not {count!r}"
            )
        path = self.health_check_path
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError(
                f"task definition {self.family}: health_check_path {path!r} must start with / "
                "and hold no spaces"
            )
        if not ENV_NAME.match(self.port_variable):
            raise ValueError(
                f"task definition {self.family}: port_variable {self.port_variable!r} is not "
                "an environment variable name"
            )

    @property
    def arn(self) -> str:
        """`family:revision`, as ECS names a task definition revision."""
        return f"{self.family}:{self.revision}"

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "revision": self.revision,
            "command": list(self.command),
            "environment": dict(self.environment),
            "containerPort": self.container_port,
            "desiredCount": self.desired_count,
            "healthCheckPath": self.health_check_path,
            "portVariable": self.port_variable,
            "workingDirectory": self.working_directory,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskDefinition:
        return cls(
            family=data["family"],
            revision=data["revision"],
            command=tuple(data["command"]),
            environment=MappingProxyType(dict(data.get("environment", {}))),
            container_port=data.get("containerPort", 8080),
            desired_count=data.get("desiredCount", 1),
            health_check_path=data.get("healthCheckPath", "/"),
            port_variable=data.get("portVariable", "PORT"),
            working_directory=data.get("workingDirectory"),
        )


class TaskSetStatus(StrEnum):
    """ECS task set status: PRIMARY serves the service, ACTIVE is a replacement being shifted
    to, DRAINING is being taken away."""

    PRIMARY = "PRIMARY"
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"


class TaskSetLabel(StrEnum):
    BLUE = "Blue"  # the original task set of a deployment
    GREEN = "Green"  # the replacement


@dataclass(frozen=True)
class TaskInfo:
    """One task as reported: its id, port, process id and last status."""

    task_id: str
    port: int
    pid: int | None
    status: str  # PENDING, RUNNING, STOPPED
    restarts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "port": self.port,
            "pid": self.pid,
            "status": self.status,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class TaskSetInfo:
    """A task set as CodeDeploy shows one (ECSTaskSet), plus its test-listener weight."""

    identifier: str
    label: TaskSetLabel
    status: TaskSetStatus
    task_definition: str
    target_group: str
    desired_count: int
    pending_count: int
    running_count: int
    traffic_weight: float  # production listener, 0-100
    test_traffic_weight: float  # test listener, 0-100
    tasks: tuple[TaskInfo, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "identifer": self.identifier,  # CodeDeploy's own spelling
            "taskSetLabel": str(self.label),
            "status": str(self.status),
            "taskDefinition": self.task_definition,
            "targetGroup": {"name": self.target_group},
            "desiredCount": self.desired_count,
            "pendingCount": self.pending_count,
            "runningCount": self.running_count,
            "trafficWeight": self.traffic_weight,
            "testTrafficWeight": self.test_traffic_weight,
            "tasks": [t.to_json() for t in self.tasks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSetInfo:
        return cls(
            identifier=data["identifer"],
            label=TaskSetLabel(data["taskSetLabel"]),
            status=TaskSetStatus(data["status"]),
            task_definition=data["taskDefinition"],
            target_group=data["targetGroup"]["name"],
            desired_count=data["desiredCount"],
            pending_count=data["pendingCount"],
            running_count=data["runningCount"],
            traffic_weight=data["trafficWeight"],
            test_traffic_weight=data["testTrafficWeight"],
            tasks=tuple(
                TaskInfo(t["taskId"], t["port"], t["pid"], t["status"], t.get("restarts", 0))
                for t in data.get("tasks", [])
            ),
        )
