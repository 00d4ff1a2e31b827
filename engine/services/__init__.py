"""The ECS-like platform: services running task sets of task definitions (local processes,
each in its own process group) behind a production and an optional test listener that weight
two target groups, with the operations an ECS blue/green deployment drives (runtime.py) and
the state on disk that CLI commands read (state.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
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
    from engine.services.state import (
        ServiceState,
        TaskDefinitions,
        load_service_state,
        services_dir,
    )
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
    "services_dir",
    "stop_services",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.services.client": "stop_services",
        "engine.services.model": (
            "Service ServiceError TaskDefinition TaskInfo TaskSetInfo TaskSetLabel "
            "TaskSetStartError TaskSetStatus"
        ),
        "engine.services.runtime": "ServiceRuntime",
        "engine.services.state": "ServiceState TaskDefinitions load_service_state services_dir",
        "engine.services.tasks": "StartPolicy Task TaskSet",
    },
)
