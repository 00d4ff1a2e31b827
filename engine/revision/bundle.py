"""A revision bundle opened on the controller: its type checked, scanned, hashed."""

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from engine.host.bundle_model import BUNDLE_TYPES, DEFAULT_MAX_BUNDLE_BYTES, KIND_FILE, UnsafeBundle
from engine.host.bundle_scan import detect_bundle_type, scan_bundle
from engine.host.hashing import sha256_directory, sha256_file
from engine.revision.errors import BundleError

# tar and tgz read alike: like the reference's GNU tar, the reader detects compression itself.
_TAR_FAMILY = ("tar", "tgz")


@dataclass(frozen=True)
class Bundle:
    """A bundle that passed the safety scan.

    ``bundle_type`` is what the content is (a gzip-compressed tar given as "tar" is "tgz").
    ``sha256`` is the file's SHA-256, or ``sha256_directory`` for a directory. ``size_bytes``
    is the file's size on disk, or the total size of a directory's regular files.
    ``member_names`` are the scan's normalised member paths ("a/b"), as stored.
    """

    path: Path
    bundle_type: str
    sha256: str
    size_bytes: int
    member_names: tuple[str, ...] = ()


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """`512M`, `4G`, `1.5G` or a number of bytes; ValueError says how to write it."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in _SIZE_UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size; write e.g. 512M or 4G") from None
    if value <= 0:
        raise ValueError(f"{text!r} is not a size above zero; write e.g. 512M or 4G")
    return int(value * _SIZE_UNITS[unit])


def open_bundle(
    path: str | PathLike[str],
    bundle_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> Bundle:
    """Check, scan and hash the bundle at ``path``; ``bundle_type`` None detects it.

    The checks follow codedeploy-local's order (docs/codedeploy-agent.md#local-validation): a valid
    type, an existing path, a directory only with type "directory" and a file only with an archive
    type; then the content must be of the type given, and the safety scan must pass. Raises
    BundleError.
    """
    bundle_path = Path(path).expanduser().absolute()
    if bundle_type is not None and bundle_type not in BUNDLE_TYPES:
        raise BundleError(
            f"Invalid bundle type {bundle_type!r} for {bundle_path}: "
            f"use one of {', '.join(BUNDLE_TYPES)}",
            reason="invalid_type",
            path=bundle_path,
        )
    if not bundle_path.exists():
        raise BundleError(
            f"Bundle {bundle_path} does not exist: check the bundle location "
            "(relative paths are taken from the current directory)",
            reason="not_found",
            path=bundle_path,
        )
    try:
        detected = _detect(bundle_path, bundle_type)
        members = scan_bundle(bundle_path, detected, max_bytes)
        if detected == "directory":
            sha256 = sha256_directory(bundle_path)
            size_bytes = sum(member.size for member in members if member.kind == KIND_FILE)
        else:
            sha256 = sha256_file(bundle_path)
            size_bytes = bundle_path.stat().st_size
    except UnsafeBundle as error:
        raise BundleError.from_unsafe(error, bundle_path) from error
    return Bundle(
        path=bundle_path,
        bundle_type=detected,
        sha256=sha256,
        size_bytes=size_bytes,
        member_names=tuple(member.name for member in members),
    )


def _detect(path: Path, given: str | None) -> str:
    """The bundle's actual type, checked against the type the caller gave."""
    if given == "directory" and not path.is_dir():
        raise BundleError(
            f"Bundle type 'directory' was given for {path}, which is a file: give the "
            "archive's type (deploydeck local: -t tar, tgz or zip; other commands detect it "
            "when --bundle-type is left out)",
            reason="wrong_type",
            path=path,
        )
    if given is not None and given != "directory" and path.is_dir():
        raise BundleError(
            f"Bundle type {given!r} was given for {path}, which is a directory: use type "
            "'directory' or point at an archive file",
            reason="wrong_type",
            path=path,
        )
    detected = detect_bundle_type(path)
    if given is None or given == detected:
        return detected
    if given in _TAR_FAMILY and detected in _TAR_FAMILY:
        return detected
    raise BundleError(
        f"Bundle type {given!r} was given for {path}, but its content is a {detected} "
        f"archive: pass type {detected!r} (deploydeck local: -t {detected}; other commands "
        "detect it when --bundle-type is left out)",
        reason="wrong_type",
        path=path,
    )
