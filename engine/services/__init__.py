"""The ECS-like platform: services running task sets of task definitions (local processes,
each in its own process group) behind a production and an optional test listener that weight
two target groups, with the operations an ECS blue/green deployment drives (runtime.py) and
the state on disk that CLI commands read (state.py)."""

from engine.services.client import stop_services
from engine.services.model import (
    Service,
    ServiceError,
    TaskDefinition,
    TaskInfo,
    TaskSetInfo,
    TaskSetLabel,
    TaskSetStartError,
    TaskSetStatus,
)
from engine.services.runtime import ServiceRuntime
from engine.services.state import ServiceState, TaskDefinitions, load_service_state
from engine.services.tasks import StartPolicy, Task, TaskSet

__all__ = [
    "Service",
    "ServiceError",
    "ServiceRuntime",
    "ServiceState",
    "StartPolicy",
    "Task",
    "TaskDefinition",
    "TaskDefinitions",
    "TaskInfo",
    "TaskSet",
    "TaskSetInfo",
    "TaskSetLabel",
    "TaskSetStartError",
    "TaskSetStatus",
    "load_service_state",
    "stop_services",
]
