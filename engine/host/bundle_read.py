"""Reading bundle content: tar and zip streams front to back, directory bundles through file
descriptors that never follow a symlink, and one member's bytes without extracting the rest.

Corrupt or truncated archive data, and a bundle changed since its scan, become UnsafeBundle.
Standard library only, Python 3.8 syntax (this ships to hosts with engine/host).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import zlib
from typing import IO, TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Tuple, Type, Union

from .bundle_model import (
    _CHUNK_BYTES,
    KIND_FILE,
    BundleMember,
    PathArg,
    UnsafeBundle,
    _changed,
    _too_large,
    _unreadable,
)

if TYPE_CHECKING:  # the archive modules are imported where an archive is read
    import tarfile

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_DIRECTORY_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC


def _archive_read_error_types() -> Tuple[Type[BaseException], ...]:
    """Exceptions the archive readers raise on corrupt or truncated data."""
    import tarfile
    import zipfile

    return (
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
            import zipfile

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


class _TarReader:
    """A tar (plain, gzip, bzip2 or xz) read front to back, like ``tar -xf`` auto-detecting
    compression, that also notices data after the last header that is not the end marker
    (tarfile silently stops there: a truncated archive or a header whose size lies)."""

    def __init__(self, bundle: str) -> None:
        import tarfile

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
    except _archive_read_error_types() as exc:
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
        except _archive_read_error_types() as exc:
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
    return os.fdopen(fd, "rb", buffering=0)  # read in chunks of up to 1 MB: no buffer needed


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
