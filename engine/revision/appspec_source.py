"""Finding and reading a revision's appspec inside a bundle, without extracting it."""

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.host.bundle_model import KIND_DIRECTORY, KIND_FILE, BundleMember, UnsafeBundle
from engine.host.bundle_read import read_member
from engine.host.bundle_scan import resolve_member, scan_bundle
from engine.host.extract import leading_directory
from engine.revision.bundle import Bundle
from engine.revision.errors import BundleError

# The Install lookup after <AppSpecFilename> (docs/codedeploy-agent.md#install step 2).
DEFAULT_APPSPEC_NAMES = ("appspec.yaml", "appspec.yml")

# An appspec is a few kilobytes; anything past this is not one.
MAX_APPSPEC_BYTES = 1024 * 1024

_APPSPEC_LIKE = re.compile("appspec", re.IGNORECASE)
_MAX_HINTS = 5


@dataclass(frozen=True)
class AppSpecSource:
    """An appspec's text and where it came from.

    ``name`` is its path inside the revision (after leading-directory stripping), e.g.
    "appspec.yml"; ``display_path`` is what to show users: "web-v1.tgz:web-v1/appspec.yml"
    for an archive member, the file's real path for a directory bundle.
    """

    name: str
    text: str
    display_path: str


def read_appspec(bundle: Bundle, appspec_filename: str | None = None) -> AppSpecSource:
    """The bundle's appspec, found the way the agent's Install finds it
    (docs/codedeploy-agent.md#install).

    Archives first get the leading-directory rule
    (docs/codedeploy-agent.md#leading-directory-stripping), judged on member names. Then the first
    present of ``appspec_filename`` (when given), "appspec.yaml", "appspec.yml" wins. Only that
    member is read. Raises BundleError.
    """
    names = _candidate_names(bundle, appspec_filename)
    if bundle.bundle_type == "directory":
        return _read_from_directory(bundle, names)
    return _read_from_archive(bundle, names)


def _candidate_names(bundle: Bundle, appspec_filename: str | None) -> list[str]:
    names = list(DEFAULT_APPSPEC_NAMES)
    if appspec_filename is None or not appspec_filename.strip():
        return names
    # Like the agent's File.join, a leading "/" stays inside the revision.
    parts = [part for part in PurePosixPath(appspec_filename).parts if part not in ("/", ".")]
    if not parts or ".." in parts:
        raise BundleError(
            f"Appspec filename {appspec_filename!r} for bundle {bundle.path} must be a path "
            "inside the revision, without '..': for example 'appspec.yml' or "
            "'deploy/appspec.yml'",
            reason="bad_appspec_filename",
            path=bundle.path,
            member=appspec_filename,
        )
    given = "/".join(parts)
    return [given] + [name for name in names if name != given]


def _read_from_archive(bundle: Bundle, names: list[str]) -> AppSpecSource:
    try:
        # The bundle passed its size limit in open_bundle; here only its structure matters.
        members = scan_bundle(bundle.path, bundle.bundle_type, sys.maxsize)
        prefix = leading_directory(member.name for member in members)
        for name in names:
            inner = f"{prefix}/{name}" if prefix else name
            display_path = f"{bundle.path.name}:{inner}"
            target = resolve_member(members, inner)
            if target is None:
                continue
            if target.kind != KIND_FILE:
                raise _not_a_file(bundle, display_path, inner, target.kind)
            if target.size > MAX_APPSPEC_BYTES:
                raise _too_large(bundle, display_path, inner, target.size)
            data = read_member(bundle.path, bundle.bundle_type, target, MAX_APPSPEC_BYTES)
            text = _decode(bundle, display_path, inner, data)
            return AppSpecSource(name=name, text=text, display_path=display_path)
    except UnsafeBundle as error:
        raise BundleError.from_unsafe(error, bundle.path) from error
    where = (
        f"in the archive's leading directory '{prefix}/' (stripped as the agent does)"
        if prefix
        else "at the root of the archive"
    )
    raise _missing(bundle, names, where, _archive_hints(members))


def _read_from_directory(bundle: Bundle, names: list[str]) -> AppSpecSource:
    root = bundle.path.resolve()
    for name in names:
        candidate = bundle.path / name
        if not candidate.exists():  # follows symlinks: a dangling link is absent, as in Ruby
            continue
        display_path = str(candidate)
        if not candidate.resolve().is_relative_to(root):
            raise BundleError(
                f"Appspec {display_path} is a symlink leading outside the bundle directory "
                f"{bundle.path}: put the appspec itself in the revision",
                reason="link_outside",
                path=bundle.path,
                member=name,
            )
        if not candidate.is_file():
            raise _not_a_file(bundle, display_path, name, KIND_DIRECTORY)
        size = candidate.stat().st_size
        if size > MAX_APPSPEC_BYTES:
            raise _too_large(bundle, display_path, name, size)
        text = _decode(bundle, display_path, name, candidate.read_bytes())
        return AppSpecSource(name=name, text=text, display_path=display_path)
    raise _missing(bundle, names, "at the root of the directory", _directory_hints(bundle.path))


def _decode(bundle: Bundle, display_path: str, member: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BundleError(
            f"Appspec {display_path} is not UTF-8 text (invalid byte at offset {error.start}): "
            "save it as UTF-8",
            reason="appspec_encoding",
            path=bundle.path,
            member=member,
        ) from error


def _not_a_file(bundle: Bundle, display_path: str, member: str, kind: str) -> BundleError:
    return BundleError(
        f"Appspec {display_path} is a {kind}, not a file: the appspec must be a YAML file",
        reason="appspec_not_file",
        path=bundle.path,
        member=member,
    )


def _too_large(bundle: Bundle, display_path: str, member: str, size: int) -> BundleError:
    return BundleError(
        f"Appspec {display_path} is {size} bytes, more than the {MAX_APPSPEC_BYTES} an "
        "appspec may have: check that the right file is named",
        reason="appspec_too_large",
        path=bundle.path,
        member=member,
    )


def _missing(bundle: Bundle, names: list[str], where: str, hints: list[str]) -> BundleError:
    looked_for = ", ".join(repr(name) for name in names)
    message = f"No appspec in bundle {bundle.path}: looked for {looked_for} {where}."
    if hints:
        message += f" Found elsewhere: {', '.join(repr(hint) for hint in hints)}."
    message += (
        " Put appspec.yml at the root of the revision, or give its path with the appspec "
        "filename option."
    )
    return BundleError(message, reason="appspec_missing", path=bundle.path)


def _archive_hints(members: list[BundleMember]) -> list[str]:
    """Member paths that look like an appspec, to say where the user may have put it."""
    hints = [
        member.name
        for member in members
        if member.kind != KIND_DIRECTORY and _APPSPEC_LIKE.search(member.name.rsplit("/", 1)[-1])
    ]
    return hints[:_MAX_HINTS]


def _directory_hints(root: Path) -> list[str]:
    """Appspec-like files at most three levels down (a bounded look, not a full walk)."""
    hints: list[str] = []
    for pattern in ("*", "*/*", "*/*/*"):
        for path in sorted(root.glob(pattern)):
            if _APPSPEC_LIKE.search(path.name) and not path.is_dir():
                hints.append(path.relative_to(root).as_posix())
    return hints[:_MAX_HINTS]
