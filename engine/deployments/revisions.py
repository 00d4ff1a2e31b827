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
from dataclasses import dataclass
from pathlib import Path

from engine.appspec import AnyAppSpec, AppSpecKind, detect_kind, parse_appspec
from engine.appspec.diagnostics import Diagnostic
from engine.appspec.server import ServerAppSpec
from engine.deployments.run import RevisionPayload
from engine.host import archive
from engine.model import ComputePlatform, RevisionRef
from engine.private_files import private_folder
from engine.revision import (
    DEFAULT_MAX_BUNDLE_BYTES,
    AppSpecSource,
    Bundle,
    BundleError,
    open_bundle,
    read_appspec,
)
from engine.revision.references import missing_references, revision_paths


class RevisionInvalid(Exception):
    """The revision cannot be deployed; `diagnostics` holds appspec errors and warnings."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


# The appspec each compute platform deploys, as engine.appspec names its kinds.
APPSPEC_KINDS: dict[ComputePlatform, AppSpecKind] = {
    ComputePlatform.SERVER: "server",
    ComputePlatform.LAMBDA: "lambda",
    ComputePlatform.ECS: "ecs",
}
_KIND_NAMES = {"server": "Server", "lambda": "Lambda", "ecs": "ECS"}


@dataclass(frozen=True)
class OpenedRevision:
    """A bundle and its appspec, parsed as its platform's kind."""

    bundle: Bundle
    source: AppSpecSource
    appspec: AnyAppSpec
    warnings: tuple[Diagnostic, ...]


def open_revision(
    location: Path,
    bundle_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    *,
    appspec_filename: str = "appspec.yml",
    platform: ComputePlatform = ComputePlatform.SERVER,
) -> OpenedRevision:
    """Open a bundle and parse its appspec, which must be of `platform`'s kind; nothing is
    written. RevisionInvalid says what is wrong (with the appspec's diagnostics)."""
    try:
        bundle = open_bundle(location, bundle_type, max_bytes=max_bytes)
        source = read_appspec(bundle, appspec_filename)
    except BundleError as error:
        raise RevisionInvalid(str(error)) from None
    wanted, found = APPSPEC_KINDS[platform], detect_kind(source.text)
    if found != wanted:
        raise RevisionInvalid(
            f"{source.display_path} is a {_KIND_NAMES[found]} appspec, but this deployment "
            f"is for the {platform} compute platform: deploy a {platform} revision, or set "
            f"the application's compute_platform to {_KIND_NAMES[found]}"
        )
    result = parse_appspec(source.text, filename=source.display_path, kind=wanted)
    if not result.ok:
        raise RevisionInvalid(f"{source.display_path} is not a valid appspec", result.diagnostics)
    return OpenedRevision(bundle, source, result.appspec, result.warnings)


@dataclass(frozen=True)
class CheckedRevision:
    bundle: Bundle
    appspec: dict
    warnings: tuple[Diagnostic, ...]

    @property
    def ref(self) -> RevisionRef:
        return RevisionRef(self.bundle.sha256, str(self.bundle.path), self.bundle.bundle_type)


def check_revision(
    location: Path,
    bundle_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    platform: ComputePlatform = ComputePlatform.SERVER,
) -> CheckedRevision:
    """Open a bundle and validate its appspec for `platform`; nothing is written. A Server
    appspec comes back as the agent's JSON form, its files checked against the bundle."""
    opened = open_revision(location, bundle_type, max_bytes, platform=platform)
    appspec, warnings = opened.appspec, opened.warnings
    if not isinstance(appspec, ServerAppSpec):
        return CheckedRevision(opened.bundle, {}, warnings)
    missing = missing_references(opened.source, revision_paths(opened.bundle))
    return CheckedRevision(opened.bundle, appspec.to_agent_dict(), warnings + missing)


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
                archive.copy_directory_bundle(str(revision.bundle.path), str(partial))
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
        return RevisionPayload(str(path), ref.bundle_type, ref.sha256, checked.appspec)


def _remove(path: Path) -> None:
    """Delete a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
