"""Revisions as the engine deploys them: checked, snapshotted by sha256, parsed.

A revision folder can change after it was deployed; a rollback must still install exactly what
ran before. So the first time a revision is used, its bundle is copied to
`.deploydeck/revisions/<sha256>` (a folder) or `<sha256>.<type>` (an archive), and every
deployment installs from that snapshot.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.host.extract import copy_directory_bundle
from engine.model import ComputePlatform, RevisionRef
from engine.private_files import private_folder
from engine.revision.check import (
    CheckedRevision,
    OpenedRevision,
    RevisionInvalid,
    check_revision,
    open_revision,
)

if TYPE_CHECKING:
    from engine.deployments.run import RevisionPayload

__all__ = [
    "CheckedRevision",
    "OpenedRevision",
    "RevisionInvalid",
    "RevisionSnapshots",
    "check_revision",
    "open_revision",
]


class RevisionSnapshots:
    """Immutable copies of deployed revisions under the workspace's state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "revisions"
        private_folder(self.folder)  # bundles may hold owner-only files: so is their copy

    def path(self, ref: RevisionRef) -> Path:
        name = ref.sha256 if ref.bundle_type == "directory" else f"{ref.sha256}.{ref.bundle_type}"
        return self.folder / name

    def keep(self, revision: CheckedRevision) -> Path:
        """Copy the bundle into the snapshot folder once; returns the snapshot's path.

        The copy is made under a name of its own and renamed into place, so two processes
        keeping the same new revision at once never share a half-made copy; the one that
        renames second finds the snapshot there and drops its own copy."""
        ref = revision.ref
        target = self.path(ref)
        if target.exists():
            return target
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        try:
            if ref.bundle_type == "directory":
                copy_directory_bundle(str(revision.bundle.path), str(partial))
            else:
                shutil.copyfile(revision.bundle.path, partial)
            try:
                partial.rename(target)  # a file replaces an identical file: the same content
            except OSError:
                if not target.is_dir():  # a folder already there: another process won
                    raise
        finally:
            _remove(partial)
        return target

    def payload(
        self, ref: RevisionRef, platform: ComputePlatform = ComputePlatform.SERVER
    ) -> RevisionPayload:
        """The snapshot of `ref`, checked again (its sha256 must still match)."""
        path = self.path(ref)
        if not path.exists():
            raise RevisionInvalid(
                f"The snapshot of revision {ref.short()} ({ref.location}) is missing from "
                f"{self.folder}; register or deploy the revision again"
            )
        checked = check_revision(path, ref.bundle_type, sys.maxsize, platform)  # kept: accepted
        if checked.bundle.sha256 != ref.sha256:
            raise RevisionInvalid(
                f"The snapshot {path} no longer matches revision {ref.short()}: it was changed "
                "by hand. Delete it and deploy the revision from its source again."
            )
        from engine.deployments.run import RevisionPayload  # a runner's: not a command's

        return RevisionPayload(str(path), ref.bundle_type, ref.sha256, checked.appspec)


def _remove(path: Path) -> None:
    """Delete a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
