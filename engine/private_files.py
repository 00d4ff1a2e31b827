"""Owner-only files and folders for what the controller keeps: the state database, the
runners' logs and the revision caches (0600 files, 0700 folders), whatever the umask.

Bundles may hold files their authors made 0600, and logs may hold what hooks printed: another
user of the machine must not read them through deploydeck's copies. An existing file or folder
is tightened too, so a workspace made by an older version is brought in line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700
# SQLite's companions of a WAL database: created with the database file's mode, but they may
# predate this module.
DATABASE_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):  # not ours to change (another user's): leave it
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner can enter (parents made as usual); returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=FOLDER_MODE)
    _tighten(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read (created empty when missing); returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


def private_database(path: Path) -> Path:
    """The SQLite database at `path` and its companion files, owner-only, before it is opened:
    SQLite then creates its write-ahead log and shared memory with the same mode."""
    private_file(path)
    for suffix in DATABASE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)
    return path
