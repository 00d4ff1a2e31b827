"""Finding the workspace file a command should use."""

from __future__ import annotations

from pathlib import Path

from engine.workspace.errors import WorkspaceNotFoundError
from engine.workspace.paths import WORKSPACE_FILENAME


def find_workspace(start: Path, explicit: Path | None = None) -> Path:
    """The workspace file to use, as an absolute path: `explicit` (a file, or a folder holding
    deploydeck.yml; relative to the current directory), else deploydeck.yml in `start`.
    Raises WorkspaceNotFoundError saying where it looked and how to create one."""
    if explicit is not None:
        target = Path(explicit).expanduser().absolute()
        if target.is_dir():
            return _in_folder(target)
        if target.is_file():
            return target
        raise WorkspaceNotFoundError(
            f"no workspace file at {target}: it does not exist. Pass an existing deploydeck.yml "
            f"(or its folder), or run `deploydeck init {target.parent}` to write one."
        )
    return _in_folder(Path(start).expanduser().absolute())


def _in_folder(folder: Path) -> Path:
    candidate = folder / WORKSPACE_FILENAME
    if candidate.is_file():
        return candidate
    near = folder / "deploydeck.yaml"
    extra = f" (found {near.name}: rename it to {WORKSPACE_FILENAME})" if near.is_file() else ""
    raise WorkspaceNotFoundError(
        f"no {WORKSPACE_FILENAME} in {folder}{extra}. Run `deploydeck init` there to write a "
        "starter workspace, or pass the path of an existing one."
    )
