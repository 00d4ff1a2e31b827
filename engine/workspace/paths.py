"""Where a workspace keeps things: paths in the file are relative to the workspace folder."""

from __future__ import annotations

import os
from pathlib import Path

WORKSPACE_FILENAME = "deploydeck.yml"
STATE_DIR_NAME = ".deploydeck"


def workspace_path(folder: Path, text: str) -> Path:
    """A path as written in the workspace file: `~` expanded, relative to `folder`, normalised
    (`..` folded) but with symlinks left alone."""
    return Path(os.path.normpath(folder / Path(text).expanduser()))


def default_root(folder: Path, instance: str) -> Path:
    """A local instance's folder when the workspace names none."""
    return folder / STATE_DIR_NAME / "instances" / instance
