"""Install's file copy keeps what shutil.copy2 keeps (content, mode, times, extended
attributes) and, as root, the owner, through the files' descriptors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.host.install import _copy


def _made(path: Path, content: bytes, mode: int) -> Path:
    path.write_bytes(content)
    os.chmod(path, mode)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    os.setxattr(path, "user.deploydeck", b"kept")
    os.chown(path, 1234, 2345)
    return path


def _kept(path: Path) -> tuple:
    st = path.stat()
    return (
        path.read_bytes(),
        st.st_mode,
        st.st_mtime_ns,  # atime left out: reading the source moves it (relatime)
        os.getxattr(path, "user.deploydeck"),
        (st.st_uid, st.st_gid),
    )


def test_a_copy_keeps_what_copy2_keeps(tmp_path: Path) -> None:
    """Empty, small and multi-megabyte files copied by Install -> the same content, mode,
    modification time and extended attribute as copy2 gives, the owner as root, over a stale target."""
    assert os.geteuid() == 0  # the tests run as root (the owner is kept only then)
    for name, content, mode in (
        ("empty", b"", 0o640),
        ("small", b"<h1>hi</h1>\n" * 10, 0o751),
        ("large", os.urandom(3 << 20), 0o604),
    ):
        source = _made(tmp_path / f"{name}.src", content, mode)
        ours, theirs = tmp_path / f"{name}.ours", tmp_path / f"{name}.copy2"
        ours.write_bytes(b"stale content, longer than some sources" * 100)
        _copy({"type": "copy", "source": str(source), "destination": str(ours)})
        shutil.copy2(source, theirs)
        os.chown(theirs, 1234, 2345)
        assert _kept(ours) == _kept(theirs) == _kept(source)
