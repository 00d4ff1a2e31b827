"""Content hashes of bundles: sha256 of a file, and of a directory tree's names, kinds and
content. Standard library only, Python 3.8 syntax (this ships to hosts with engine/host).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import List, Tuple

from .bundle_model import (
    _CHUNK_BYTES,
    PathArg,
)


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
