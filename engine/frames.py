"""Length-prefixed frames on pipes: how a runner and the helpers it forks (file workers, the
hook launcher) pass pickled requests and answers. A frame is its length (4 bytes, big-endian)
then that many bytes. Standard library only."""

from __future__ import annotations

import os
import struct

_HEADER = struct.Struct("!I")


def framed(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to a blocking descriptor."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(fd: int) -> bytes | None:
    """The next frame's payload from a blocking descriptor; None at the end of the pipe."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0])


def take_frames(received: bytearray) -> list[bytes]:
    """The payloads of the whole frames at the start of `received`, removed from it; a
    frame still arriving stays."""
    frames = []
    while len(received) >= _HEADER.size:
        (length,) = _HEADER.unpack_from(received)
        if len(received) < _HEADER.size + length:
            break
        frames.append(bytes(received[_HEADER.size : _HEADER.size + length]))
        del received[: _HEADER.size + length]
    return frames


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
