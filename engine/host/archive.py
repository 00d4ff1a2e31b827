"""Revision bundles for DownloadBundle: detect, scan for safety, extract, copy, strip, hash.

This module ships to remote hosts as is: it uses the standard library only, keeps Python 3.8
syntax, and assumes a POSIX host (it relies on ``O_NOFOLLOW`` and ``dir_fd`` system calls).

Every bundle is scanned completely before anything is written (ARCHITECTURE.md invariant 7):
absolute paths,
``..`` escapes, links leading out of the bundle, device files, FIFOs, absurd sizes and corrupt
archives are refused with an ``UnsafeBundle`` that names the bundle, the member and what to do.
Extraction then writes only what the scan listed, through directory file descriptors opened
with ``O_NOFOLLOW``, so even an archive or destination changed behind our back cannot make it
write outside the destination; on any failure the destination is removed entirely.

The outcome matches the reference agent's ``tar -xpsf`` (and ``unzip``): modes including
exec bits, symlinks as symlinks, hard links, directories and mtimes; ownership when root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

try:  # absent on non-POSIX Pythons; only needed to map owner names when running as root
    import grp
    import pwd
except ImportError:  # pragma: no cover
    # Without them owner names are not mapped: _owner_ids checks for None.
    grp = None  # type: ignore[assignment]
    pwd = None  # type: ignore[assignment]

BUNDLE_TYPES = ("tar", "tgz", "zip", "directory")

# What the functions accept as a path (a str or a pathlib.Path).
PathArg = Union[str, "os.PathLike[str]"]

# Total uncompressed bytes a bundle may hold: generous for real revisions, fatal for bombs.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024**3
# What each member costs against that limit on top of its content (a tar header's size): an
# empty file still takes an inode and a directory entry, so a million of them are no free lunch.
MEMBER_COST_BYTES = 512
# Directory levels a bundle may nest: real trees need a few dozen; deeper ones only break the
# tools (recursion, PATH_MAX) that walk them after extraction.
MAX_BUNDLE_DEPTH = 256

# The sibling directory the reference moves the archive through when stripping
# (docs/codedeploy-agent.md#leading-directory-stripping).
LEADING_DIRECTORY_TEMP_NAME = "deployment-archive-temp"

KIND_FILE = "file"
KIND_DIRECTORY = "directory"
KIND_SYMLINK = "symlink"
KIND_HARDLINK = "hardlink"

# The member name of the bundle root itself (a tar's "./" entry, a directory bundle's top).
ROOT_NAME = "."

# Every UnsafeBundle.reason this module raises.
REFUSAL_REASONS = (
    "absolute_path",  # a member path starting with "/"
    "parent_escape",  # a member path climbing above the root with ".."
    "link_outside",  # a symlink or hard link leading outside the root (or absolute)
    "through_link",  # a member path passing through a symlink member
    "bad_link",  # an empty symlink target, a hard link to nothing earlier in the bundle
    "link_loop",  # symlinks that refer to each other endlessly
    "device_file",  # a character or block device
    "special_file",  # a FIFO or a socket
    "conflicting_member",  # one name used for two kinds, or a file used as a directory
    "too_large",  # more uncompressed bytes than the limit (each member counts its header too)
    "too_deep",  # directories nested more than MAX_BUNDLE_DEPTH levels
    "bad_archive",  # unreadable, truncated or corrupt archive data
    "changed",  # the bundle changed between the scan and the extraction
    "unreadable",  # the bundle or one of its files cannot be read
    "not_found",  # the bundle path does not exist
    "invalid_type",  # a bundle type outside BUNDLE_TYPES
    "wrong_type",  # a directory given as an archive type, or a file given as "directory"
    "unknown_type",  # content that is neither tar, gzip-compressed tar nor zip
    "control_character",  # a member name holding a newline or another control character
    "not_a_file",  # a bundle path that is a device, FIFO or socket, not a file or directory
)

_APPSPEC_NAME = re.compile("appspec", re.IGNORECASE)
_CHUNK_BYTES = 1024 * 1024
_MAX_LINK_TARGET_BYTES = 4096  # PATH_MAX on Linux
_MAX_LINK_HOPS = 40  # the kernel's MAXSYMLINKS
_TAR_BLOCK = 512

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC

# Exceptions the archive readers raise on corrupt or truncated data.
_ARCHIVE_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
    struct.error,
)


class UnsafeBundle(Exception):
    """A bundle refused before (or while) it is written anywhere.

    ``reason`` is a short code from REFUSAL_REASONS, ``bundle`` the bundle path, ``member`` the
    offending member name as stored in the bundle (None when the bundle as a whole is at fault),
    ``problem`` what is wrong and ``advice`` what to do; ``str()`` is the full sentence.
    """

    def __init__(
        self, reason: str, bundle: str, member: Optional[str], problem: str, advice: str
    ) -> None:
        self.reason = reason
        self.bundle = bundle
        self.member = member
        self.problem = problem
        self.advice = advice
        where = f"bundle {bundle!r}"
        if member is not None:
            where += f", member {member!r}"
        super().__init__(f"Refusing {where}: {problem}. {advice}")

    def __reduce__(self) -> Tuple[type, Tuple[str, str, Optional[str], str, str]]:
        return (
            type(self),
            (self.reason, self.bundle, self.member, self.problem, self.advice),
        )


@dataclass(frozen=True)
class BundleMember:
    """One entry of a bundle, as the scan saw it.

    ``name`` is the normalised path below the root ("a/b", or "." for the root itself);
    ``archive_name`` the name as stored. ``kind`` is one of the KIND_* values. ``size`` is the
    declared content size of files (0 for other kinds), ``mode`` the permission bits (0o7777).
    ``link_target`` is the symlink target as stored, or for a hard link the stored name of the
    member it links to. ``index`` is the position in the archive (walk order for directories).
    """

    name: str
    archive_name: str
    kind: str
    size: int
    mode: int
    link_target: Optional[str]
    mtime: float
    uid: Optional[int]
    gid: Optional[int]
    uname: Optional[str]
    gname: Optional[str]
    index: int


class _LinkLoop(Exception):
    """Symlink resolution exceeded _MAX_LINK_HOPS."""


# --------------------------------------------------------------------------------------------
# Detection


def detect_bundle_type(path: PathArg) -> str:
    """The bundle type of ``path`` by its content: "directory", "zip", "tgz" or "tar".

    zip and gzip are recognised by their magic numbers, tar by its "ustar" magic or, for
    old-style, bzip2- or xz-compressed tars, by tarfile. Anything else is an UnsafeBundle.
    """
    bundle = os.fspath(path)
    if os.path.isdir(bundle):
        return "directory"
    check_bundle_path(bundle)
    try:
        with open(bundle, "rb") as handle:
            head = handle.read(_TAR_BLOCK)
    except FileNotFoundError:
        raise _not_found(bundle) from None
    except OSError as exc:
        raise _unreadable(bundle, None, exc) from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tgz"
    if head[257:262] == b"ustar":
        return "tar"
    if _is_tarfile(bundle):
        return "tar"
    if zipfile.is_zipfile(bundle):  # e.g. a self-extracting zip with a prefix
        return "zip"
    raise UnsafeBundle(
        "unknown_type",
        bundle,
        None,
        "its content is not a tar, gzip-compressed tar or zip archive"
        + (" (the file is empty)" if not head else ""),
        "Build the bundle with tar, tar -z or zip, or pass a directory",
    )


def check_bundle_path(path: PathArg) -> None:
    """Refuse a bundle path that is neither a regular file nor a directory (after symlinks)
    before anything reads it: /dev/zero never ends and a FIFO blocks its reader."""
    bundle = os.fspath(path)
    try:
        info = os.stat(bundle)
    except FileNotFoundError:
        raise _not_found(bundle) from None
    except OSError as exc:
        raise _unreadable(bundle, None, exc) from None
    if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
        return
    kind = {
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a pipe (FIFO), which is not seekable and can be read only once",
        stat.S_IFSOCK: "a socket",
    }.get(stat.S_IFMT(info.st_mode), "not a regular file")
    raise UnsafeBundle(
        "not_a_file",
        bundle,
        None,
        f"it is {kind}, not a regular file or a directory",
        "Point at the bundle archive or the revision directory itself",
    )


def _is_tarfile(bundle: str) -> bool:
    try:
        return tarfile.is_tarfile(bundle)
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# Scanning


def scan_bundle(
    path: PathArg,
    bundle_type: str,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> List[BundleMember]:
    """Every member of the bundle, in archive order, after checking that it is safe to write.

    Archives are read completely (content included), so truncated or corrupt data and sizes
    that lie are caught here, before anything is written. Raises UnsafeBundle.
    """
    bundle = os.fspath(path)
    _check_type_against_path(bundle, bundle_type)
    if bundle_type == "directory":
        members = _scan_directory(bundle, max_bytes)
    elif bundle_type == "zip":
        members = _scan_zip(bundle, max_bytes)
    else:
        members = _scan_tar(bundle, max_bytes)
    _check_structure(bundle, members)
    return members


def _check_type_against_path(bundle: str, bundle_type: str) -> None:
    if bundle_type not in BUNDLE_TYPES:
        raise UnsafeBundle(
            "invalid_type",
            bundle,
            None,
            "bundle type {!r} is not one of {}".format(bundle_type, ", ".join(BUNDLE_TYPES)),
            "Use one of those types",
        )
    if not os.path.lexists(bundle):
        raise _not_found(bundle)
    check_bundle_path(bundle)
    is_directory = os.path.isdir(bundle)
    if bundle_type == "directory" and not is_directory:
        raise UnsafeBundle(
            "wrong_type",
            bundle,
            None,
            "bundle type 'directory' was given but the path is a file",
            "Give the archive's type (tar, tgz or zip), or point at the revision directory",
        )
    if bundle_type != "directory" and is_directory:
        raise UnsafeBundle(
            "wrong_type",
            bundle,
            None,
            f"bundle type {bundle_type!r} was given but the path is a directory",
            "Use bundle type 'directory' for a directory, or point at the archive file",
        )


def _scan_tar(bundle: str, max_bytes: int) -> List[BundleMember]:
    members: List[BundleMember] = []
    declared = 0
    with _archive_read_errors(bundle), _TarReader(bundle) as reader:
        for index, info in reader.members():
            member = _tar_member(bundle, info, index)
            declared += member.size + MEMBER_COST_BYTES
            if declared > max_bytes:
                raise _too_large(bundle, member.archive_name, declared, max_bytes, index + 1)
            if member.kind == KIND_FILE:
                _drain(bundle, member, reader.content(info))
            members.append(member)
    return members


def _scan_zip(bundle: str, max_bytes: int) -> List[BundleMember]:
    members: List[BundleMember] = []
    with _archive_read_errors(bundle), zipfile.ZipFile(bundle) as archive:
        infos = archive.infolist()
        declared = sum(info.file_size for info in infos) + MEMBER_COST_BYTES * len(infos)
        if declared > max_bytes:
            raise _too_large(bundle, None, declared, max_bytes, len(infos))
        for index, info in enumerate(infos):
            member = _zip_member(bundle, info, index, archive)
            if member.kind == KIND_FILE:
                with archive.open(info) as content:
                    _drain(bundle, member, content)
            members.append(member)
    return members


def _scan_directory(bundle: str, max_bytes: int) -> List[BundleMember]:
    try:
        root = os.stat(bundle)
    except OSError as exc:
        raise _unreadable(bundle, None, exc) from None
    members = [_directory_member(ROOT_NAME, root, None, 0)]
    total = 0
    pending = [""]  # relative directories still to list, "" being the root
    while pending:
        relative_dir = pending.pop()
        absolute_dir = os.path.join(bundle, relative_dir) if relative_dir else bundle
        try:
            with os.scandir(absolute_dir) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            raise _unreadable(bundle, relative_dir or ROOT_NAME, exc) from None
        subdirectories = []
        for entry in entries:
            name = relative_dir + "/" + entry.name if relative_dir else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
                target = os.readlink(entry.path) if stat.S_ISLNK(info.st_mode) else None
            except OSError as exc:
                raise _unreadable(bundle, name, exc) from None
            member = _directory_member(name, info, target, len(members))
            total += member.size + MEMBER_COST_BYTES
            if total > max_bytes:
                raise _too_large(bundle, name, total, max_bytes, len(members))
            if member.kind == KIND_DIRECTORY:
                subdirectories.append(name)
            members.append(member)
        pending.extend(reversed(subdirectories))
    return members


def _directory_member(
    name: str, info: os.stat_result, target: Optional[str], index: int
) -> BundleMember:
    file_type = stat.S_IFMT(info.st_mode)
    if file_type == stat.S_IFDIR:
        kind = KIND_DIRECTORY
    elif file_type == stat.S_IFREG:
        kind = KIND_FILE
    elif file_type == stat.S_IFLNK:
        kind = KIND_SYMLINK
    else:
        kind = _special_kind(file_type)
    return BundleMember(
        name=name,
        archive_name=name,
        kind=kind,
        size=info.st_size if kind == KIND_FILE else 0,
        mode=stat.S_IMODE(info.st_mode),
        link_target=target,
        mtime=info.st_mtime,
        uid=info.st_uid,
        gid=info.st_gid,
        uname=None,
        gname=None,
        index=index,
    )


def _special_kind(file_type: int) -> str:
    # Kinds only used to build refusals: the structure check rejects them.
    if file_type in (stat.S_IFCHR, stat.S_IFBLK):
        return "device"
    return "FIFO" if file_type == stat.S_IFIFO else "socket"


def _tar_member(bundle: str, info: tarfile.TarInfo, index: int) -> BundleMember:
    name = _member_path(bundle, info.name)
    target: Optional[str] = None
    if info.isreg():
        kind = KIND_FILE
    elif info.isdir():
        kind = KIND_DIRECTORY
    elif info.issym():
        kind = KIND_SYMLINK
        target = info.linkname
    elif info.islnk():
        kind = KIND_HARDLINK
        target = info.linkname
    elif info.ischr() or info.isblk():
        kind = "device"
    elif info.isfifo():
        kind = "FIFO"
    else:
        raise UnsafeBundle(
            "bad_archive",
            bundle,
            info.name,
            f"it has the unsupported tar member type {info.type!r}",
            "Rebuild the archive with regular files, directories and links only",
        )
    return BundleMember(
        name=name,
        archive_name=info.name,
        kind=kind,
        size=info.size if kind == KIND_FILE else 0,
        mode=stat.S_IMODE(info.mode),
        link_target=target,
        mtime=float(info.mtime),
        uid=info.uid,
        gid=info.gid,
        uname=info.uname or None,
        gname=info.gname or None,
        index=index,
    )


def _zip_member(
    bundle: str, info: zipfile.ZipInfo, index: int, archive: Optional[zipfile.ZipFile]
) -> BundleMember:
    """A zip entry as a member; with ``archive`` given, symlink targets are read from it."""
    name = _member_path(bundle, info.filename)
    if info.flag_bits & 0x1:
        raise UnsafeBundle(
            "bad_archive",
            bundle,
            info.filename,
            "it is encrypted",
            "Rebuild the zip without a password",
        )
    unix_mode = info.external_attr >> 16  # Info-ZIP stores st_mode in the high 16 bits
    file_type = stat.S_IFMT(unix_mode)
    target: Optional[str] = None
    if info.filename.endswith("/") or file_type == stat.S_IFDIR:
        kind = KIND_DIRECTORY
    elif file_type == stat.S_IFLNK:
        kind = KIND_SYMLINK
        if archive is not None:
            target = _read_zip_link_target(bundle, info, archive)
    elif file_type in (stat.S_IFREG, 0):
        kind = KIND_FILE
    else:
        kind = _special_kind(file_type)
    # Without Unix modes (a zip made on Windows), unzip's defaults.
    default_mode = 0o755 if kind == KIND_DIRECTORY else 0o644
    mode = stat.S_IMODE(unix_mode) if unix_mode else default_mode
    return BundleMember(
        name=name,
        archive_name=info.filename,
        kind=kind,
        size=info.file_size if kind == KIND_FILE else 0,
        mode=mode,
        link_target=target,
        mtime=_zip_mtime(info),
        uid=None,
        gid=None,
        uname=None,
        gname=None,
        index=index,
    )


def _read_zip_link_target(bundle: str, info: zipfile.ZipInfo, archive: zipfile.ZipFile) -> str:
    if info.file_size > _MAX_LINK_TARGET_BYTES:
        raise UnsafeBundle(
            "bad_link",
            bundle,
            info.filename,
            f"it is a symlink whose target is {info.file_size} bytes long",
            "Rebuild the zip with a valid symlink (zip -y) or a regular file",
        )
    with archive.open(info) as content:
        return os.fsdecode(content.read(_MAX_LINK_TARGET_BYTES + 1))


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    """The entry's mtime: the UTC "UT" extra field when present (as unzip uses), else the
    local-time DOS date."""
    extra = info.extra
    offset = 0
    while offset + 4 <= len(extra):
        header_id, size = struct.unpack("<HH", extra[offset : offset + 4])
        data = extra[offset + 4 : offset + 4 + size]
        if header_id == 0x5455 and len(data) >= 5 and data[0] & 0x1:
            return float(struct.unpack("<i", data[1:5])[0])
        offset += 4 + size
    try:
        year, month, day, hour, minute, second = info.date_time
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _member_path(bundle: str, raw: str) -> str:
    """The normalised name of a stored member path; refuses absolute paths and ".." escapes."""
    if raw.startswith("/"):
        raise UnsafeBundle(
            "absolute_path",
            bundle,
            raw,
            "the path is absolute",
            "Rebuild the archive with paths relative to the revision root "
            "(for example: tar -czf bundle.tgz -C <revision-dir> .)",
        )
    parts: List[str] = []
    for component in raw.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise UnsafeBundle(
                    "parent_escape",
                    bundle,
                    raw,
                    "the path climbs out of the bundle root through '..'",
                    "Rebuild the archive from inside the revision directory, "
                    "without '..' in member paths",
                )
            parts.pop()
        else:
            parts.append(component)
    return "/".join(parts) if parts else ROOT_NAME


def _components(raw: str) -> List[str]:
    return [component for component in raw.split("/") if component not in ("", ".")]


def _check_structure(bundle: str, members: List[BundleMember]) -> None:
    """Refuse special files, name conflicts, paths through symlinks and links leading out."""
    kinds: Dict[str, str] = {}
    symlinks: Dict[str, str] = {}
    first_index: Dict[str, int] = {}
    for member in members:
        _refuse_control_characters(bundle, member)
        _refuse_special(bundle, member)
        _refuse_depth(bundle, member)
        previous = kinds.get(member.name)
        if previous is not None and previous != member.kind:
            raise UnsafeBundle(
                "conflicting_member",
                bundle,
                member.archive_name,
                f"the name appears twice, as a {previous} and as a {member.kind}",
                "Rebuild the archive so that each path appears once",
            )
        kinds[member.name] = member.kind
        first_index.setdefault(member.name, member.index)
        if member.kind == KIND_SYMLINK:
            symlinks[member.name] = member.link_target or ""
    if kinds.get(ROOT_NAME, KIND_DIRECTORY) != KIND_DIRECTORY:
        raise UnsafeBundle(
            "conflicting_member",
            bundle,
            ROOT_NAME,
            f"an entry names the bundle root itself but is a {kinds[ROOT_NAME]}",
            "Rebuild the archive with paths relative to the revision root",
        )
    for member in members:
        _check_parents(bundle, member.archive_name, member.archive_name, kinds)
        if member.kind == KIND_SYMLINK:
            _check_symlink(bundle, member, symlinks)
        elif member.kind == KIND_HARDLINK:
            _check_hardlink(bundle, member, kinds, first_index)


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _refuse_control_characters(bundle: str, member: BundleMember) -> None:
    """A newline (or any control character) in a name would let one file pose as several
    paths in the agent's records and logs, and no real revision needs one."""
    found = _CONTROL_CHARACTER.search(member.archive_name)
    if found:
        raise UnsafeBundle(
            "control_character",
            bundle,
            member.archive_name,
            "its name contains the control character %r at position %d"
            % (found.group(), found.start()),
            "Rename the file in the revision without newlines, tabs or other control characters",
        )


def _refuse_depth(bundle: str, member: BundleMember) -> None:
    depth = member.name.count("/") + (member.kind == KIND_DIRECTORY)
    if member.name != ROOT_NAME and depth > MAX_BUNDLE_DEPTH:
        raise UnsafeBundle(
            "too_deep",
            bundle,
            member.archive_name,
            f"it is {depth} directories deep, more than the {MAX_BUNDLE_DEPTH} a bundle may nest",
            "Flatten the revision's folders; no deployment needs them this deep",
        )


def _refuse_special(bundle: str, member: BundleMember) -> None:
    if member.kind == "device":
        raise UnsafeBundle(
            "device_file",
            bundle,
            member.archive_name,
            "it is a character or block device",
            "Remove device files from the revision",
        )
    if member.kind in ("FIFO", "socket"):
        raise UnsafeBundle(
            "special_file",
            bundle,
            member.archive_name,
            f"it is a {member.kind}",
            "Remove FIFOs and sockets from the revision; create them in a hook script if needed",
        )


def _check_parents(bundle: str, member: str, raw: str, kinds: Dict[str, str]) -> None:
    """Refuse a stored path that passes through a symlink or a non-directory member."""
    parts: List[str] = []
    for component in _components(raw):
        if parts:
            kind = kinds.get("/".join(parts))
            if kind == KIND_SYMLINK:
                raise UnsafeBundle(
                    "through_link",
                    bundle,
                    member,
                    "its path goes through {!r}, a symlink in the same bundle; writing it "
                    "would follow the link".format("/".join(parts)),
                    "Rebuild the archive with the real directory instead of the link",
                )
            if kind in (KIND_FILE, KIND_HARDLINK):
                raise UnsafeBundle(
                    "conflicting_member",
                    bundle,
                    member,
                    "its path goes through {!r}, which is a file in the same bundle".format(
                        "/".join(parts)
                    ),
                    "Rebuild the archive so that no file is also used as a directory",
                )
        if component == "..":
            parts.pop()  # _member_path already refused climbing above the root
        else:
            parts.append(component)


def _check_symlink(bundle: str, member: BundleMember, symlinks: Dict[str, str]) -> None:
    target = member.link_target or ""
    if not target:
        raise UnsafeBundle(
            "bad_link",
            bundle,
            member.archive_name,
            "it is a symlink with an empty target",
            "Rebuild the archive with a valid symlink or a regular file",
        )
    directory = [] if member.name == ROOT_NAME else member.name.split("/")[:-1]
    try:
        resolved = _resolve_link_target(directory, target, symlinks)
    except _LinkLoop:
        raise UnsafeBundle(
            "link_loop",
            bundle,
            member.archive_name,
            f"it is a symlink to {target!r}, which never resolves (the links loop)",
            "Fix the symlinks in the revision",
        ) from None
    if resolved is None:
        raise UnsafeBundle(
            "link_outside",
            bundle,
            member.archive_name,
            f"it is a symlink to {target!r}, which leads outside the bundle",
            "Keep symlink targets relative and inside the revision; "
            "create links to system paths in a hook script instead",
        )


def _check_hardlink(
    bundle: str, member: BundleMember, kinds: Dict[str, str], first_index: Dict[str, int]
) -> None:
    target = member.link_target or ""
    try:
        target_name = _member_path(bundle, target)
    except UnsafeBundle:
        target_name = None
    if target_name is None:
        raise UnsafeBundle(
            "link_outside",
            bundle,
            member.archive_name,
            f"it is a hard link to {target!r}, which is outside the bundle",
            "Rebuild the archive without hard links to files outside the revision",
        )
    _check_parents(bundle, member.archive_name, target, kinds)
    earlier = first_index.get(target_name, member.index) < member.index
    if not earlier or target_name == member.name or kinds.get(target_name) == KIND_DIRECTORY:
        raise UnsafeBundle(
            "bad_link",
            bundle,
            member.archive_name,
            f"it is a hard link to {target!r}, which is not an earlier file of the bundle",
            "Rebuild the archive (tar records hard links to files it archived before)",
        )


def _resolve_link_target(
    start: List[str], target: str, symlinks: Dict[str, str]
) -> Optional[List[str]]:
    """Where ``target``, followed from directory ``start``, lands in the extracted tree.

    Resolves the way the kernel would, following the bundle's own symlinks (so ".." after a
    link climbs from the link's target). None when the path leaves the root at any point or
    is absolute; raises _LinkLoop after _MAX_LINK_HOPS links.
    """
    if target.startswith("/"):
        return None
    parts = list(start)
    pending = list(reversed(target.split("/")))
    hops = 0
    while pending:
        component = pending.pop()
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(component)
        link = symlinks.get("/".join(parts))
        if link is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise _LinkLoop()
        if link.startswith("/"):
            return None
        parts.pop()
        pending.extend(reversed(link.split("/")))
    return parts


def resolve_member(members: List[BundleMember], name: str) -> Optional[BundleMember]:
    """The member that ``name`` (a path below the root) finally designates in the extracted
    tree, following symlinks and hard links; None if nothing is there."""
    symlinks: Dict[str, str] = {}
    by_name: Dict[str, BundleMember] = {}
    for member in members:
        by_name[member.name] = member  # a later duplicate replaces an earlier one, as in tar
        if member.kind == KIND_SYMLINK:
            symlinks[member.name] = member.link_target or ""
    try:
        parts = _resolve_link_target([], name, symlinks)
    except _LinkLoop:
        return None
    if parts is None:
        return None
    found = by_name.get("/".join(parts) if parts else ROOT_NAME)
    if found is not None and found.kind == KIND_HARDLINK:
        target = _member_path("", found.link_target or "")
        earlier = [m for m in members if m.name == target and m.index < found.index]
        found = earlier[-1] if earlier else None
        if found is not None and found.kind != KIND_FILE:
            found = resolve_member(members[: found.index + 1], found.name)
    return found


def read_member(
    path: PathArg,
    bundle_type: str,
    member: BundleMember,
    max_bytes: int,
) -> bytes:
    """The content of one file member (from scan_bundle or resolve_member), without
    extracting anything else. Raises UnsafeBundle if it is larger than ``max_bytes``."""
    bundle = os.fspath(path)
    if member.kind != KIND_FILE:
        raise ValueError(f"read_member needs a file member, not a {member.kind}")
    if member.size > max_bytes:
        raise _too_large(bundle, member.archive_name, member.size, max_bytes)
    sink = _BytesSink()
    if bundle_type == "directory":
        source_fd = os.open(bundle, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        sources = _DirectoryCache(source_fd, create=False)
        try:
            with _open_source_file(bundle, sources, member) as content:
                _copy_member(bundle, member, content, sink.write, lambda count: None)
        finally:
            sources.close()
            os.close(source_fd)
        return sink.data()
    with _archive_read_errors(bundle):
        if bundle_type == "zip":
            with zipfile.ZipFile(bundle) as archive:
                infos = archive.infolist()
                if member.index >= len(infos) or infos[member.index].filename != (
                    member.archive_name
                ):
                    raise _changed(bundle, member.archive_name)
                with archive.open(infos[member.index]) as content:
                    _copy_member(bundle, member, content, sink.write, lambda count: None)
        else:
            with _TarReader(bundle) as reader:
                for index, info in reader.members():
                    if index == member.index:
                        if info.name != member.archive_name or not info.isreg():
                            raise _changed(bundle, member.archive_name)
                        _copy_member(
                            bundle, member, reader.content(info), sink.write, lambda count: None
                        )
                        break
                else:
                    raise _changed(bundle, member.archive_name)
    return sink.data()


class _BytesSink:
    def __init__(self) -> None:
        self._chunks: List[bytes] = []

    def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def data(self) -> bytes:
        return b"".join(self._chunks)


# --------------------------------------------------------------------------------------------
# Reading archives


class _TarReader:
    """A tar (plain, gzip, bzip2 or xz) read front to back, like ``tar -xf`` auto-detecting
    compression, that also notices data after the last header that is not the end marker
    (tarfile silently stops there: a truncated archive or a header whose size lies)."""

    def __init__(self, bundle: str) -> None:
        self._bundle = bundle
        with _archive_read_errors(bundle):
            self._raw = open(bundle, "rb")  # noqa: SIM115 - closed in __exit__
            try:
                self._stream = _ForwardReader(_decompressed(self._raw))
                # typeshed wants write() and close() even to read: tarfile never calls them here.
                self._archive = tarfile.open(  # noqa: SIM115
                    fileobj=self._stream,  # type: ignore[call-overload]
                    mode="r:",
                )
            except BaseException:
                self._raw.close()
                raise

    def __enter__(self) -> "_TarReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._archive.close()
        self._raw.close()

    def members(self) -> Iterator[Tuple[int, tarfile.TarInfo]]:
        index = 0
        last_name = None
        while True:
            with _archive_read_errors(self._bundle):
                info = self._archive.next()
            if info is None:
                break
            yield index, info
            index += 1
            last_name = info.name
        # tarfile stops at any unreadable header; only zeros or the end of data end a tar.
        block = self._stream.block_read_at(self._archive.offset)
        if block is not None and block.strip(b"\0"):
            raise UnsafeBundle(
                "bad_archive",
                self._bundle,
                last_name,
                "the data after this member is not a tar header: the archive is corrupt, or "
                "this member's header declares a size that does not match its data",
                "Rebuild the archive",
            )

    def content(self, info: tarfile.TarInfo) -> IO[bytes]:
        with _archive_read_errors(self._bundle):
            content = self._archive.extractfile(info)
        if content is None:  # pragma: no cover - only for non-file members
            raise _changed(self._bundle, info.name)
        return content


def _decompressed(raw: IO[bytes]) -> "Union[IO[bytes], io.BufferedIOBase]":
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic[:3] == b"BZh":
        import bz2

        return bz2.BZ2File(raw)
    if magic == b"\xfd7zXZ\x00":
        import lzma

        return lzma.LZMAFile(raw)
    return raw


class _ForwardReader:
    """A read-only stream that seeks forward only (by reading), remembering the last read so
    the block tarfile failed to parse can be inspected afterwards."""

    def __init__(self, stream: "Union[IO[bytes], io.BufferedIOBase]") -> None:
        self._stream = stream
        self._position = 0
        self._last_position = -1
        self._last_data = b""

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._last_position = self._position
        self._last_data = data
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._position
        elif whence != 0:
            raise OSError("only forward seeks from the start or the current position")
        if offset < self._position:
            raise OSError("cannot seek backwards in a bundle stream")
        while self._position < offset:
            if not self._stream_read_discard(min(_CHUNK_BYTES, offset - self._position)):
                break
        return self._position

    def _stream_read_discard(self, size: int) -> int:
        data = self._stream.read(size)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def block_read_at(self, offset: int) -> Optional[bytes]:
        """The data last read at ``offset``, or None if the last read started elsewhere."""
        if self._last_position == offset:
            return self._last_data
        return None


@contextlib.contextmanager
def _archive_read_errors(bundle: str) -> Iterator[None]:
    """Turn the readers' exceptions on corrupt data into UnsafeBundle("bad_archive").

    Only wraps reading: errors writing the destination (a full disk) stay OSErrors.
    """
    try:
        yield
    except UnsafeBundle:
        raise
    except PermissionError as exc:
        raise _unreadable(bundle, None, exc) from exc
    except _ARCHIVE_READ_ERRORS as exc:
        raise UnsafeBundle(
            "bad_archive",
            bundle,
            None,
            f"the archive cannot be read ({type(exc).__name__}: {exc})",
            "Check that the file is complete and is of the type given, and rebuild it",
        ) from exc


def _drain(bundle: str, member: BundleMember, content: IO[bytes]) -> None:
    """Read a member's content to the end, checking it has exactly its declared size."""
    _copy_member(bundle, member, content, lambda chunk: None, lambda count: None)


def _copy_member(
    bundle: str,
    member: BundleMember,
    content: IO[bytes],
    write: Callable[[bytes], None],
    count: Callable[[int], None],
) -> None:
    """Copy a member's content, never more than its declared size (plus one byte to notice
    more); ``count`` sees every chunk's length first so limits hold while writing."""
    copied = 0
    while True:
        try:
            chunk = content.read(min(_CHUNK_BYTES, member.size - copied + 1))
        except _ARCHIVE_READ_ERRORS as exc:
            raise UnsafeBundle(
                "bad_archive",
                bundle,
                member.archive_name,
                f"its data cannot be read ({type(exc).__name__}: {exc})",
                "Check that the file is complete, and rebuild it",
            ) from exc
        if not chunk:
            break
        copied += len(chunk)
        if copied > member.size:
            raise UnsafeBundle(
                "changed",
                bundle,
                member.archive_name,
                f"it holds more data than the {member.size} bytes declared when the bundle was "
                "scanned",
                "Do not modify the bundle while it is deployed; rebuild it if it is corrupt",
            )
        count(len(chunk))
        write(chunk)
    if copied < member.size:
        raise UnsafeBundle(
            "bad_archive",
            bundle,
            member.archive_name,
            f"its data ends after {copied} of the {member.size} bytes its header declares",
            "The archive is truncated or corrupt; rebuild it",
        )


# --------------------------------------------------------------------------------------------
# Extraction and copy


def extract_bundle(
    path: PathArg,
    bundle_type: str,
    dest_dir: PathArg,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    preserve_owner: Optional[bool] = None,
) -> List[BundleMember]:
    """Scan the bundle, then write it into ``dest_dir`` (created; it must be missing or empty).

    The outcome of the reference's ``tar -xpsf`` / ``unzip``: modes (exec bits included),
    symlinks, hard links, directories and mtimes. ``preserve_owner`` (default: when running
    as root) restores the archive's owners, by name first then by id as GNU tar does; without
    it setuid/setgid bits are dropped. A "directory" bundle is copied (copy_directory_bundle).
    A refused bundle writes nothing; any failure while writing removes ``dest_dir`` entirely.
    Raises UnsafeBundle, FileExistsError for a non-empty destination, OSError for host errors.
    """
    if bundle_type == "directory":
        return copy_directory_bundle(path, dest_dir, max_bytes, preserve_owner)
    bundle = os.fspath(path)
    members = scan_bundle(bundle, bundle_type, max_bytes)
    if bundle_type == "zip":
        _materialise(
            bundle,
            dest_dir,
            max_bytes,
            preserve_owner,
            lambda writer: _write_zip(bundle, members, writer),
        )
    else:
        _materialise(
            bundle,
            dest_dir,
            max_bytes,
            preserve_owner,
            lambda writer: _write_tar(bundle, members, writer),
        )
    return members


def copy_directory_bundle(
    src: PathArg,
    dest_dir: PathArg,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    preserve_owner: Optional[bool] = None,
) -> List[BundleMember]:
    """DownloadBundle for a directory bundle: scan it, then copy it recursively into
    ``dest_dir`` preserving modes, mtimes, symlinks as symlinks (and owners, as
    extract_bundle). Files are copied as the scan saw them; one that changed is refused."""
    bundle = os.fspath(src)
    members = scan_bundle(bundle, "directory", max_bytes)

    def copy(writer: "_TreeWriter") -> None:
        source_fd = os.open(bundle, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        sources = _DirectoryCache(source_fd, create=False)
        try:
            for member in members:
                sources.release()
                if member.kind == KIND_FILE:
                    with _open_source_file(bundle, sources, member) as content:
                        writer.add(member, content)
                else:
                    writer.add(member, None)
        finally:
            sources.close()
            os.close(source_fd)

    _materialise(bundle, dest_dir, max_bytes, preserve_owner, copy)
    return members


def _open_source_file(bundle: str, sources: "_DirectoryCache", member: BundleMember) -> IO[bytes]:
    """A directory bundle's file, opened without following any symlink on the way."""
    parts = member.name.split("/")
    try:
        parent = sources.get(parts[:-1])
        # O_NONBLOCK: a FIFO swapped in since the scan must not hang the copy.
        flags = os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=parent)
    except PermissionError as exc:
        raise _unreadable(bundle, member.name, exc) from exc
    except OSError as exc:
        raise UnsafeBundle(
            "changed",
            bundle,
            member.name,
            f"it cannot be opened as the regular file the scan found ({exc})",
            "Do not modify the bundle directory while it is deployed",
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _changed(bundle, member.name)
    return os.fdopen(fd, "rb")


def _write_tar(bundle: str, members: List[BundleMember], writer: "_TreeWriter") -> None:
    """Write the scanned members, taking only file content from the archive read again."""
    with _TarReader(bundle) as reader:
        count = 0
        for index, info in reader.members():
            if index >= len(members):
                raise _changed(bundle, info.name)
            member = members[index]
            if _signature(_tar_member(bundle, info, index)) != _signature(member):
                raise _changed(bundle, info.name)
            writer.add(member, reader.content(info) if member.kind == KIND_FILE else None)
            count += 1
        if count != len(members):
            raise _changed(bundle, None)


def _write_zip(bundle: str, members: List[BundleMember], writer: "_TreeWriter") -> None:
    """Write the scanned members, taking only file content from the archive read again."""
    with _archive_read_errors(bundle):
        archive = zipfile.ZipFile(bundle)
    with archive:
        with _archive_read_errors(bundle):
            infos = archive.infolist()
        if len(infos) != len(members):
            raise _changed(bundle, None)
        for index, info in enumerate(infos):
            member = members[index]
            # Symlink targets come from the scan; compare everything else.
            again = _zip_member(bundle, info, index, None)
            if _signature(again)[:3] != _signature(member)[:3]:
                raise _changed(bundle, info.filename)
            if member.kind != KIND_FILE:
                writer.add(member, None)
                continue
            with _archive_read_errors(bundle):
                content = archive.open(info)
            with content:
                writer.add(member, content)


def _signature(member: BundleMember) -> Tuple[str, str, int, Optional[str]]:
    return (member.name, member.kind, member.size, member.link_target)


def _materialise(
    bundle: str,
    dest_dir: PathArg,
    max_bytes: int,
    preserve_owner: Optional[bool],
    fill: Callable[["_TreeWriter"], None],
) -> None:
    """Prepare ``dest_dir``, let ``fill`` write the members, then set directory metadata;
    on any failure remove ``dest_dir`` so nothing half-written is left."""
    dest = os.path.abspath(os.fspath(dest_dir))
    _prepare_destination(dest)
    if preserve_owner is None:
        preserve_owner = hasattr(os, "geteuid") and os.geteuid() == 0
    try:
        root_fd = os.open(dest, _DIRECTORY_FLAGS)
        try:
            writer = _TreeWriter(bundle, root_fd, max_bytes, preserve_owner)
            try:
                fill(writer)
                writer.finish()
            finally:
                writer.close()
        finally:
            os.close(root_fd)
    except BaseException:
        _remove_path(dest)
        raise


def _prepare_destination(dest: str) -> None:
    if os.path.lexists(dest):
        if os.path.islink(dest) or not os.path.isdir(dest):
            raise FileExistsError(
                f"Cannot extract into {dest!r}: it exists and is not a directory; "
                "remove it or choose another destination"
            )
        if os.listdir(dest):
            raise FileExistsError(
                f"Cannot extract into {dest!r}: the directory is not empty; "
                "extraction needs a missing or empty directory"
            )
        return
    parent = os.path.dirname(dest)
    if parent:
        os.makedirs(parent, exist_ok=True)
    os.mkdir(dest)


def _open_child_directory(parent: int, component: str, create: bool) -> int:
    """The directory ``component`` of ``parent``, never through a symlink; made if missing
    and ``create``."""
    try:
        return os.open(component, _DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(component, 0o777, dir_fd=parent)  # the umask applies, as with tar
    except FileExistsError:
        pass
    return os.open(component, _DIRECTORY_FLAGS, dir_fd=parent)


class _DirectoryCache:
    """Descriptors of the directories below one root, each opened once (without following a
    symlink) and lent to callers until `release`: members of one folder then cost no walk
    from the root. At most _CACHED_DIRECTORIES stay open between members."""

    def __init__(self, root_fd: int, create: bool) -> None:
        self._root_fd = root_fd
        self._create = create
        self._fds: Dict[Tuple[str, ...], int] = {}

    def get(self, parts: List[str]) -> int:
        """A borrowed descriptor of ``parts``; valid until the next `release` or `close`."""
        key = tuple(parts)
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        if not key:
            return self._root_fd
        parent = self.get(parts[:-1])
        fd = _open_child_directory(parent, key[-1], self._create)
        self._fds[key] = fd
        return fd

    def release(self) -> None:
        """Between members: keep the descriptors unless there are too many."""
        if len(self._fds) > _CACHED_DIRECTORIES:
            self.close()

    def close(self) -> None:
        fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)


_CACHED_DIRECTORIES = 64


class _TreeWriter:
    """Writes scanned members below one destination directory descriptor, never following a
    symlink, and counts bytes so the size limit also holds while writing."""

    def __init__(self, bundle: str, root_fd: int, max_bytes: int, preserve_owner: bool) -> None:
        self._bundle = bundle
        self._root_fd = root_fd
        self._max_bytes = max_bytes
        self._preserve_owner = preserve_owner
        self._written = 0
        self._directories: Dict[str, BundleMember] = {}
        self._open = _DirectoryCache(root_fd, create=True)

    def add(self, member: BundleMember, content: Optional[IO[bytes]]) -> None:
        self._count(MEMBER_COST_BYTES)
        self._open.release()
        if member.kind == KIND_DIRECTORY:
            if member.name != ROOT_NAME:
                self._directory(member, member.name.split("/"))
            self._directories[member.name] = member  # modes and times are set in finish()
            return
        parts = member.name.split("/")
        try:
            self._add_entry(member, parts, content)
        except FileNotFoundError:
            # A directory opened earlier was removed since: walk from the root again, which
            # refuses a symlink planted in its place.
            self._open.close()
            self._add_entry(member, parts, content)

    def _add_entry(
        self, member: BundleMember, parts: List[str], content: Optional[IO[bytes]]
    ) -> None:
        parent = self._directory(member, parts[:-1])
        if member.kind == KIND_FILE:
            assert content is not None
            self._write_file(parent, parts[-1], member, content)
        elif member.kind == KIND_SYMLINK:
            self._write_symlink(parent, parts[-1], member)
        elif member.kind == KIND_HARDLINK:
            self._write_hardlink(parent, parts[-1], member)

    def close(self) -> None:
        self._open.close()

    def finish(self) -> None:
        """Directory owners, modes and mtimes, deepest first, once their content is written."""
        names = sorted(
            self._directories, key=lambda name: 0 if name == ROOT_NAME else name.count("/") + 1
        )
        for name in reversed(names):
            self._open.release()
            member = self._directories[name]
            parts = [] if name == ROOT_NAME else name.split("/")
            self._apply_metadata(self._directory(member, parts), member)

    def _directory(self, member: BundleMember, parts: List[str]) -> int:
        """A borrowed descriptor (see _DirectoryCache) of the destination directory ``parts``."""
        try:
            return self._open.get(parts)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                raise
            raise UnsafeBundle(
                "through_link",
                self._bundle,
                member.archive_name,
                "a symlink or file appeared at {!r} in the destination while extracting "
                "({})".format("/".join(parts), exc),
                "Make sure nothing else writes to the deployment directory",
            ) from exc

    def _write_file(self, parent: int, leaf: str, member: BundleMember, content: IO[bytes]) -> None:
        try:
            fd = os.open(leaf, _CREATE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:  # a later duplicate replaces the earlier file, as with tar
            os.unlink(leaf, dir_fd=parent)
            fd = os.open(leaf, _CREATE_FLAGS, 0o600, dir_fd=parent)
        try:
            _copy_member(
                self._bundle, member, content, lambda chunk: _write_all(fd, chunk), self._count
            )
            self._apply_metadata(fd, member)
        finally:
            os.close(fd)

    def _write_symlink(self, parent: int, leaf: str, member: BundleMember) -> None:
        target = member.link_target or ""
        try:
            os.symlink(target, leaf, dir_fd=parent)
        except FileExistsError:
            os.unlink(leaf, dir_fd=parent)
            os.symlink(target, leaf, dir_fd=parent)
        if self._preserve_owner:
            uid, gid = _owner_ids(member)
            os.chown(leaf, uid, gid, dir_fd=parent, follow_symlinks=False)
        try:
            os.utime(leaf, ns=_ns(member), dir_fd=parent, follow_symlinks=False)
        except NotImplementedError:  # pragma: no cover - platforms without lutimes
            pass

    def _write_hardlink(self, parent: int, leaf: str, member: BundleMember) -> None:
        target_parts = _member_path(self._bundle, member.link_target or "").split("/")
        source = self._directory(member, target_parts[:-1])
        try:
            os.link(
                target_parts[-1],
                leaf,
                src_dir_fd=source,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )
        except FileExistsError:
            os.unlink(leaf, dir_fd=parent)
            os.link(
                target_parts[-1],
                leaf,
                src_dir_fd=source,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )

    def _apply_metadata(self, fd: int, member: BundleMember) -> None:
        mode = member.mode
        if self._preserve_owner:
            uid, gid = _owner_ids(member)
            os.fchown(fd, uid, gid)  # before chmod: chown clears setuid bits
        else:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        os.fchmod(fd, mode)
        os.utime(fd, ns=_ns(member))

    def _count(self, size: int) -> None:
        self._written += size
        if self._written > self._max_bytes:
            raise _too_large(self._bundle, None, self._written, self._max_bytes)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ns(member: BundleMember) -> Tuple[int, int]:
    stamp = int(member.mtime * 1_000_000_000)
    return (stamp, stamp)


def _owner_ids(member: BundleMember) -> Tuple[int, int]:
    """Owner and group to restore: the names when they exist on this host, else the ids
    (GNU tar's rule as root); -1 leaves a value unchanged."""
    uid = member.uid if member.uid is not None else -1
    gid = member.gid if member.gid is not None else -1
    if member.uname and pwd is not None:
        try:
            uid = pwd.getpwnam(member.uname).pw_uid
        except KeyError:
            pass
    if member.gname and grp is not None:
        try:
            gid = grp.getgrnam(member.gname).gr_gid
        except KeyError:
            pass
    return uid, gid


def _remove_path(path: str) -> None:
    """rm -rf, also through directories left without write or search permission."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except OSError:
        _make_tree_removable(path)
        shutil.rmtree(path)


def _make_tree_removable(path: str) -> None:
    os.chmod(path, stat.S_IRWXU)
    for current, directories, _ in os.walk(path):  # top-down: a parent opens before its children
        for name in directories:
            child = os.path.join(current, name)
            if not os.path.islink(child):
                try:
                    os.chmod(child, stat.S_IRWXU)
                except OSError:
                    pass


# --------------------------------------------------------------------------------------------
# Leading-directory stripping (docs/codedeploy-agent.md#leading-directory-stripping)


def leading_directory(member_names: Iterable[str]) -> Optional[str]:
    """The directory to strip, judged on member names: when the archive root holds exactly one
    entry, it is a directory, and that directory directly contains an entry whose name matches
    /appspec/i, its name; else None."""
    roots = set()
    children: Dict[str, Set[str]] = {}
    for raw in member_names:
        parts = _lenient_parts(raw)
        if not parts:
            continue  # the root entry itself
        roots.add(parts[0])
        if len(parts) > 1:
            children.setdefault(parts[0], set()).add(parts[1])
    if len(roots) != 1:
        return None
    (root,) = roots
    if root not in children:  # a file, or a directory with nothing in it
        return None
    if any(_APPSPEC_NAME.search(child) for child in children[root]):
        return root
    return None


def _lenient_parts(raw: str) -> List[str]:
    parts: List[str] = []
    for component in raw.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if parts:
                parts.pop()
        else:
            parts.append(component)
    return parts


def strip_leading_directory(archive_dir: PathArg) -> bool:
    """Apply the leading-directory rule to an extracted archive on disk.

    When it holds exactly one entry, a directory (not a symlink) directly containing a name
    matching /appspec/i, that directory becomes ``archive_dir``: ``archive_dir`` is moved to
    the sibling ``deployment-archive-temp`` (removed first if present), the inner directory is
    moved back to ``archive_dir`` and the emptied temp directory is removed. True if stripped.
    """
    archive = os.path.abspath(os.fspath(archive_dir))
    entries = os.listdir(archive)
    if len(entries) != 1:
        return False
    nested = os.path.join(archive, entries[0])
    if not stat.S_ISDIR(os.lstat(nested).st_mode):
        return False
    if not any(_APPSPEC_NAME.search(name) for name in os.listdir(nested)):
        return False
    temp = os.path.join(os.path.dirname(archive), LEADING_DIRECTORY_TEMP_NAME)
    if temp == archive:
        raise ValueError(
            f"Cannot strip the leading directory of {archive!r}: it is named like the temporary "
            f"directory {LEADING_DIRECTORY_TEMP_NAME!r}"
        )
    _remove_path(temp)
    os.rename(archive, temp)
    os.rename(os.path.join(temp, entries[0]), archive)
    os.rmdir(temp)
    return True


# --------------------------------------------------------------------------------------------
# Hashing


def sha256_file(path: PathArg) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_directory(path: PathArg) -> str:
    """Hex SHA-256 of a directory tree's content, independent of where it lives and when.

    Scheme (version 1): every entry below ``path`` (``path`` itself excluded; symlinks are
    not followed) gives one record of four netstring fields, ``<len>:<bytes>``:

    1. kind: ``d`` directory, ``f`` regular file, ``l`` symlink, ``o`` anything else;
    2. the path relative to ``path``, "/"-separated, as file-system bytes;
    3. the permission bits ``stat.S_IMODE`` in octal ASCII (``0`` for symlinks);
    4. payload: the file's hex SHA-256, the symlink's target bytes, empty otherwise.

    Records are hashed in ascending byte order of field 2, after the ASCII prefix
    ``deploydeck-tree-v1\\n``. Owners and timestamps are deliberately left out, so two copies
    of one tree hash alike; a changed byte, mode, link target, name or entry changes it.
    """
    root = os.fspath(path)
    records: List[Tuple[bytes, bytes]] = []
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        absolute_dir = os.path.join(root, relative_dir) if relative_dir else root
        with os.scandir(absolute_dir) as listing:
            entries = list(listing)
        for entry in entries:
            relative = relative_dir + "/" + entry.name if relative_dir else entry.name
            info = entry.stat(follow_symlinks=False)
            file_type = stat.S_IFMT(info.st_mode)
            mode = stat.S_IMODE(info.st_mode)
            if file_type == stat.S_IFDIR:
                kind, payload = b"d", b""
                pending.append(relative)
            elif file_type == stat.S_IFREG:
                kind, payload = b"f", sha256_file(entry.path).encode("ascii")
            elif file_type == stat.S_IFLNK:
                kind, payload, mode = b"l", os.fsencode(os.readlink(entry.path)), 0
            else:
                kind, payload = b"o", b""
            name = os.fsencode(relative)
            record = b"".join(_netstring(field) for field in (kind, name, b"%o" % mode, payload))
            records.append((name, record))
    digest = hashlib.sha256(b"deploydeck-tree-v1\n")
    for _, record in sorted(records):
        digest.update(record)
    return digest.hexdigest()


def _netstring(field: bytes) -> bytes:
    return b"%d:" % len(field) + field


# --------------------------------------------------------------------------------------------
# Refusals used in several places


def _not_found(bundle: str) -> UnsafeBundle:
    return UnsafeBundle(
        "not_found",
        bundle,
        None,
        "the path does not exist",
        "Check the bundle location (relative paths are taken from the current directory)",
    )


def _unreadable(bundle: str, member: Optional[str], exc: OSError) -> UnsafeBundle:
    return UnsafeBundle(
        "unreadable",
        bundle,
        member,
        f"it cannot be read ({exc.strerror or exc})",
        "Check its permissions",
    )


def _too_large(
    bundle: str, member: Optional[str], size: int, max_bytes: int, members: int = 0
) -> UnsafeBundle:
    counted = (
        f", counting {MEMBER_COST_BYTES} bytes for each of its {members} members" if members else ""
    )
    return UnsafeBundle(
        "too_large",
        bundle,
        member,
        f"its content adds up to more than {max_bytes} bytes uncompressed (at least {size}"
        f"{counted})",
        "Leave build outputs and dependencies out of the revision, or raise the bundle size "
        "limit if this size (or number of files) is intended",
    )


def _changed(bundle: str, member: Optional[str]) -> UnsafeBundle:
    return UnsafeBundle(
        "changed",
        bundle,
        member,
        "the bundle changed between the safety scan and the extraction",
        "Do not modify the bundle while it is deployed, then deploy again",
    )
