"""Revision bundles for DownloadBundle: detect the type and scan every member for safety.

Every bundle is scanned completely before anything is written (ARCHITECTURE.md invariant 7):
absolute paths, ``..`` escapes, links leading out of the bundle, device files, FIFOs, absurd
sizes and corrupt archives are refused with an ``UnsafeBundle`` that names the bundle, the
member and what to do. resolve_member follows a name through the scanned links.

This module ships to remote hosts as is: it uses the standard library only, keeps Python 3.8
syntax, and assumes a POSIX host.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import time
from typing import TYPE_CHECKING, Dict, List, Optional

from .bundle_model import (
    BUNDLE_TYPES,
    DEFAULT_MAX_BUNDLE_BYTES,
    KIND_DIRECTORY,
    KIND_FILE,
    KIND_HARDLINK,
    KIND_SYMLINK,
    MAX_BUNDLE_DEPTH,
    MEMBER_COST_BYTES,
    ROOT_NAME,
    BundleMember,
    PathArg,
    UnsafeBundle,
    _not_found,
    _too_large,
    _unreadable,
)
from .bundle_read import (
    _archive_read_errors,
    _drain,
    _TarReader,
)

if TYPE_CHECKING:  # the archive modules are imported where an archive is read
    import tarfile
    import zipfile

_MAX_LINK_TARGET_BYTES = 4096  # PATH_MAX on Linux

_MAX_LINK_HOPS = 40  # the kernel's MAXSYMLINKS

_TAR_BLOCK = 512


class _LinkLoop(Exception):
    """Symlink resolution exceeded _MAX_LINK_HOPS."""


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
    import zipfile

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
    import tarfile

    try:
        return tarfile.is_tarfile(bundle)
    except Exception:
        return False


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
    import zipfile

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
