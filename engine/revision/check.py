"""A revision checked before it is deployed: its bundle opened and scanned, its appspec
parsed as the kind its compute platform deploys (and refused, by name, when it is another),
a Server appspec's files checked against the bundle. Nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.appspec import AnyAppSpec, AppSpecKind, detect_kind, parse_appspec
from engine.appspec.diagnostics import Diagnostic
from engine.appspec.server import ServerAppSpec
from engine.host.bundle_model import DEFAULT_MAX_BUNDLE_BYTES
from engine.model_core import ComputePlatform
from engine.revision.appspec_source import AppSpecSource, read_appspec
from engine.revision.bundle import Bundle, open_bundle
from engine.revision.errors import BundleError
from engine.revision.references import missing_references, revision_paths

if TYPE_CHECKING:
    from engine.model import RevisionRef


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
    if not result.ok or result.appspec is None:  # ok means an appspec and no errors
        raise RevisionInvalid(f"{source.display_path} is not a valid appspec", result.diagnostics)
    return OpenedRevision(bundle, source, result.appspec, result.warnings)


@dataclass(frozen=True)
class CheckedRevision:
    bundle: Bundle
    appspec: dict
    warnings: tuple[Diagnostic, ...]

    @property
    def ref(self) -> RevisionRef:
        from engine.model import RevisionRef  # a deployment's: not `deploydeck local`'s

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
