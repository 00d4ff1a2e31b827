"""The workspace file `deploydeck.yml`: applications, deployment groups, instances, custom
deployment configs and settings (docs/workspace.md).

`load_workspace(path)` never raises on bad input: it returns a `WorkspaceResult` with the
`Workspace` (None when there is any error) and every diagnostic, each naming file, line, column,
key and what to write. `WorkspaceResult.unwrap()` raises `WorkspaceError` listing every error.
"""

from __future__ import annotations

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
