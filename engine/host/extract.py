"""Writing a scanned bundle out: extract an archive, copy a directory bundle, strip the leading
directory.

Extraction writes only what the scan listed, through directory file descriptors opened with
``O_NOFOLLOW``, so even an archive or destination changed behind our back cannot make it write
outside the destination; on any failure the destination is removed entirely. The outcome
matches the reference agent's ``tar -xpsf`` (and ``unzip``): modes including exec bits,
symlinks as symlinks, hard links, directories and mtimes; ownership when root.

This module ships to remote hosts as is: it uses the standard library only, keeps Python 3.8
syntax, and assumes a POSIX host (it relies on ``O_NOFOLLOW`` and ``dir_fd`` system calls).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from typing import IO, Callable, Dict, Iterable, List, Optional, Set, Tuple

from .bundle_model import (
    DEFAULT_MAX_BUNDLE_BYTES,
    KIND_DIRECTORY,
    KIND_FILE,
    KIND_HARDLINK,
    KIND_SYMLINK,
    MEMBER_COST_BYTES,
    ROOT_NAME,
    BundleMember,
    PathArg,
    UnsafeBundle,
    _changed,
    _too_large,
)
from .bundle_read import (
    _DIRECTORY_FLAGS,
    _O_CLOEXEC,
    _O_DIRECTORY,
    _O_NOFOLLOW,
    _archive_read_errors,
    _copy_member,
    _DirectoryCache,
    _open_source_file,
    _TarReader,
)
from .bundle_scan import (
    _member_path,
    _tar_member,
    _zip_member,
    scan_bundle,
)

try:  # absent on non-POSIX Pythons; only needed to map owner names when running as root
    import grp
    import pwd
except ImportError:  # pragma: no cover
    # Without them owner names are not mapped: _owner_ids checks for None.
    grp = None  # type: ignore[assignment]
    pwd = None  # type: ignore[assignment]


# The sibling directory the reference moves the archive through when stripping
# (docs/codedeploy-agent.md#leading-directory-stripping).
LEADING_DIRECTORY_TEMP_NAME = "deployment-archive-temp"

_APPSPEC_NAME = re.compile("appspec", re.IGNORECASE)

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC


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


# Directory bundles already scanned by this process, once remember_directory_scans is called.
_scans: Optional[Dict[Tuple[str, int], List[BundleMember]]] = None


def remember_directory_scans() -> None:
    """From now on this process scans each directory bundle once, for the bundles that do not
    change: a runner's file workers, whose bundles are revision snapshots (checked against
    their sha256 when the deployment starts), each copied to every local instance."""
    global _scans
    if _scans is None:
        _scans = {}


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
    members = _scans.get((bundle, max_bytes)) if _scans is not None else None
    if members is None:
        members = scan_bundle(bundle, "directory", max_bytes)
        if _scans is not None:
            _scans[(bundle, max_bytes)] = members

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
    import zipfile

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

        def link() -> None:
            os.link(
                target_parts[-1], leaf, src_dir_fd=source, dst_dir_fd=parent, follow_symlinks=False
            )

        try:
            link()
        except FileExistsError:  # like tar, a later member of the same name replaces it
            os.unlink(leaf, dir_fd=parent)
            link()

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
