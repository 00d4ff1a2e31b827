"""Real bundles for the tests: tar, tgz and zip archives and directories, built in tmp_path."""

import gzip
import io
import os
import stat
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHARDEV = "chardev"
FIFO = "fifo"

ARCHIVE_FORMATS = ("tar", "tgz", "zip")
ALL_FORMATS = (*ARCHIVE_FORMATS, "directory")

# A fixed mtime (UTC seconds) so archive, copy and comparison agree to the second.
MTIME = 1_700_000_000


@dataclass(frozen=True)
class Entry:
    """One bundle member to build: ``payload`` is file bytes, or a link target as str."""

    kind: str
    name: str
    payload: bytes | str = b""
    mode: int | None = None

    @property
    def permissions(self) -> int:
        if self.mode is not None:
            return self.mode
        return {DIR: 0o755, SYMLINK: 0o777, FILE: 0o644}.get(self.kind, 0o644)

    @property
    def data(self) -> bytes:
        return self.payload if isinstance(self.payload, bytes) else self.payload.encode()

    @property
    def target(self) -> str:
        return self.payload if isinstance(self.payload, str) else self.payload.decode()


def f(name: str, data: bytes = b"", mode: int | None = None) -> Entry:
    return Entry(FILE, name, data, mode)


def d(name: str, mode: int | None = None) -> Entry:
    return Entry(DIR, name, b"", mode)


def link(name: str, target: str) -> Entry:
    return Entry(SYMLINK, name, target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(HARDLINK, name, target)


APPSPEC = (
    b"version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: scripts/start.sh\n"
)

# A revision with what a real one has: exec bits, private files, symlinks to a file and to a
# directory, an empty directory, nested directories and binary data.
SAMPLE_REVISION = (
    f("appspec.yml", APPSPEC),
    d("scripts"),
    f("scripts/start.sh", b"#!/bin/sh\necho started\n", 0o755),
    link("scripts/run", "start.sh"),
    d("config", 0o750),
    f("config/app.conf", b"port = 8080\n", 0o640),
    link("current", "scripts"),
    d("logs", 0o700),
    d("static"),
    d("static/css"),
    f("static/css/site.css", b"body { margin: 0 }\n"),
    f("static/logo.bin", bytes(range(256)) * 64, 0o600),
)


def write_tar(path: Path, entries: Iterable[Entry], compression: str = "") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mode = entry.permissions
            info.mtime = MTIME
            info.uid = os.getuid()
            info.gid = os.getgid()
            if entry.kind == FILE:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
                continue
            info.type = {
                DIR: tarfile.DIRTYPE,
                SYMLINK: tarfile.SYMTYPE,
                HARDLINK: tarfile.LNKTYPE,
                CHARDEV: tarfile.CHRTYPE,
                FIFO: tarfile.FIFOTYPE,
            }[entry.kind]
            if entry.kind in (SYMLINK, HARDLINK):
                info.linkname = entry.target
            if entry.kind == CHARDEV:
                info.devmajor, info.devminor = 1, 3
            archive.addfile(info)
    return path


_ZIP_TYPES = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    CHARDEV: stat.S_IFCHR,
    FIFO: stat.S_IFIFO,
}


def write_zip(path: Path, entries: Iterable[Entry]) -> Path:
    """A zip as Info-ZIP on Unix makes it: st_mode in the high bits of external_attr,
    symlinks as members holding their target."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are built on purpose
        for entry in entries:
            if entry.kind == HARDLINK:
                raise ValueError("zip has no hard links")
            name = entry.name + "/" if entry.kind == DIR else entry.name
            info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
            info.create_system = 3
            info.external_attr = (_ZIP_TYPES[entry.kind] | entry.permissions) << 16
            # The "UT" extended timestamp Info-ZIP writes: the mtime in UTC.
            info.extra = struct.pack("<HHBi", 0x5455, 5, 1, MTIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.data)
    return path


def write_directory(root: Path, entries: Iterable[Entry]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    directories: list[tuple[Path, int]] = []
    for entry in entries:
        path = root / entry.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == FILE:
            path.write_bytes(entry.data)
            path.chmod(entry.permissions)
        elif entry.kind == DIR:
            path.mkdir(parents=True, exist_ok=True)
            directories.append((path, entry.permissions))
        elif entry.kind == SYMLINK:
            path.symlink_to(entry.target)
        elif entry.kind == HARDLINK:
            os.link(root / entry.target, path)
        elif entry.kind == FIFO:
            os.mkfifo(path)
        elif entry.kind == CHARDEV:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    for path, mode in directories:
        path.chmod(mode)
    return root


def build_bundle(directory: Path, fmt: str, entries: Sequence[Entry], stem: str = "bundle") -> Path:
    """The entries as a bundle of format ``fmt`` (tar, tgz, zip or directory) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "tar":
        return write_tar(directory / f"{stem}.tar", entries)
    if fmt == "tgz":
        return write_tar(directory / f"{stem}.tgz", entries, "gz")
    if fmt == "zip":
        return write_zip(directory / f"{stem}.zip", entries)
    if fmt == "directory":
        return write_directory(directory / stem, entries)
    raise ValueError(fmt)


def gzip_file(source: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Everything under ``root``: relative path -> (kind, mode, size, link target)."""
    listing: dict[str, tuple[str, int, int, str]] = {}
    for current, directories, files in os.walk(root):
        for name in directories + files:
            path = Path(current, name)
            info = path.lstat()
            target = os.readlink(path) if path.is_symlink() else ""
            kind = stat.S_IFMT(info.st_mode)
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            listing[path.relative_to(root).as_posix()] = (oct(kind), info.st_mode, size, target)
    return listing
