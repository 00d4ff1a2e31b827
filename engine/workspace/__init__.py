"""The workspace file `deploydeck.yml`: applications, deployment groups, instances, custom
deployment configs and settings (docs/workspace.md).

`load_workspace(path)` never raises on bad input: it returns a `WorkspaceResult` with the
`Workspace` (None when there is any error) and every diagnostic, each naming file, line, column,
key and what to write. `WorkspaceResult.unwrap()` raises `WorkspaceError` listing every error.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.workspace.discovery import find_workspace
    from engine.workspace.errors import WorkspaceError, WorkspaceNotFoundError
    from engine.workspace.loader import load_workspace, parse_workspace
    from engine.workspace.model import (
        DEFAULT_CONFIGS,
        Application,
        AutoRollback,
        DeploymentGroup,
        Instance,
        Settings,
        SshSettings,
        Transport,
        Trigger,
        Workspace,
        WorkspaceResult,
    )
    from engine.workspace.paths import STATE_DIR_NAME, WORKSPACE_FILENAME
    from engine.workspace.secrets import EnvValue, redact_text
    from engine.workspace.starter import starter_workspace
    from engine.workspace.tags import TagFilter, TagFilterType

__all__ = [
    "DEFAULT_CONFIGS",
    "STATE_DIR_NAME",
    "WORKSPACE_FILENAME",
    "Application",
    "AutoRollback",
    "DeploymentGroup",
    "EnvValue",
    "Instance",
    "Settings",
    "SshSettings",
    "TagFilter",
    "TagFilterType",
    "Transport",
    "Trigger",
    "Workspace",
    "WorkspaceError",
    "WorkspaceNotFoundError",
    "WorkspaceResult",
    "find_workspace",
    "load_workspace",
    "parse_workspace",
    "redact_text",
    "starter_workspace",
]


# each name's module, imported on first use: a command that only finds or names the workspace
# file does not pay for the loader and its checks
_HOMES = {
    "find_workspace": "engine.workspace.discovery",
    "WorkspaceError": "engine.workspace.errors",
    "WorkspaceNotFoundError": "engine.workspace.errors",
    "load_workspace": "engine.workspace.loader",
    "parse_workspace": "engine.workspace.loader",
    "DEFAULT_CONFIGS": "engine.workspace.model",
    "Application": "engine.workspace.model",
    "AutoRollback": "engine.workspace.model",
    "DeploymentGroup": "engine.workspace.model",
    "Instance": "engine.workspace.model",
    "Settings": "engine.workspace.model",
    "SshSettings": "engine.workspace.model",
    "Transport": "engine.workspace.model",
    "Trigger": "engine.workspace.model",
    "Workspace": "engine.workspace.model",
    "WorkspaceResult": "engine.workspace.model",
    "STATE_DIR_NAME": "engine.workspace.paths",
    "WORKSPACE_FILENAME": "engine.workspace.paths",
    "EnvValue": "engine.workspace.secrets",
    "redact_text": "engine.workspace.secrets",
    "starter_workspace": "engine.workspace.starter",
    "TagFilter": "engine.workspace.tags",
    "TagFilterType": "engine.workspace.tags",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
