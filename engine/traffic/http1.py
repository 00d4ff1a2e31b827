"""Just enough HTTP/1.x for a proxy: read a message head, know where its body ends, copy the
body, and decide whether the connection stays open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024
COPY_CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, so a proxy drops them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class BadMessage(Exception):
    """A malformed message head or body framing; the connection cannot continue."""


@dataclass(frozen=True)
class Head:
    """A request or response head: its first line split in three and its headers in order."""

    first: tuple[str, str, str]  # (method, target, version) or (version, status, reason)
    headers: tuple[tuple[str, str], ...]
    # Each header's value by lower-cased name, repeated ones joined by ", ": built once, as a
    # proxy asks every head for several headers.
    by_name: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found: dict[str, str] = {}
        for k, v in self.headers:
            key = k.lower()
            found[key] = f"{found[key]}, {v}" if key in found else v
        object.__setattr__(self, "by_name", found)

    def get(self, name: str) -> str | None:
        return self.by_name.get(name.lower())

    def tokens(self, name: str) -> set[str]:
        value = self.get(name)
        return {t.strip().lower() for t in value.split(",")} if value else set()


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None when the peer closed before sending a byte of it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise BadMessage("the connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise BadMessage(f"message head larger than {MAX_HEAD_BYTES} bytes") from None
    lines = raw.decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # tolerated empty lines before a request (RFC 9112 2.2)
    if not lines:
        return None
    parts = lines[0].split(" ", 2)
    if len(parts) < 2:
        raise BadMessage(f"malformed first line {lines[0][:80]!r}")
    first = (parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise BadMessage(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return Head(first, tuple(headers))


def encode_head(first: tuple[str, str, str], headers: list[tuple[str, str]]) -> bytes:
    lines = [" ".join(p for p in first if p)] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def forwarded_headers(head: Head) -> list[tuple[str, str]]:
    """The end-to-end headers of `head`: hop-by-hop ones and those named in Connection dropped."""
    dropped = HOP_BY_HOP | head.tokens("connection")
    return [(k, v) for k, v in head.headers if k.lower() not in dropped]


# A body's framing: ("none", 0), ("length", n), ("chunked", 0) or ("close", 0): until EOF.
Framing = tuple[str, int]


def request_framing(head: Head) -> Framing:
    if head.get("transfer-encoding") is not None:
        if head.get("content-length") is not None:
            raise BadMessage("both Transfer-Encoding and Content-Length")
        if head.tokens("transfer-encoding") != {"chunked"}:
            raise BadMessage("unsupported Transfer-Encoding (only chunked)")
        return ("chunked", 0)
    return _length(head) or ("none", 0)


def response_framing(request_method: str, status: int, head: Head) -> Framing:
    if request_method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return ("none", 0)
    if "chunked" in head.tokens("transfer-encoding"):
        return ("chunked", 0)
    return _length(head) or ("close", 0)


def _length(head: Head) -> Framing | None:
    value = head.get("content-length")
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise BadMessage(f"bad Content-Length {value!r}")
    n = int(values.pop())
    return ("length", n) if n else ("none", 0)


def keeps_alive(head: Head, version: str) -> bool:
    """Whether the sender of `head` keeps its connection open after this message."""
    tokens = head.tokens("connection")
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


async def copy_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: Framing):
    """Copy one body framed as `framing` from `reader` to `writer`, chunk framing included."""
    kind, n = framing
    if kind == "length":
        while n:
            data = await reader.read(min(n, COPY_CHUNK))
            if not data:
                raise BadMessage("the connection closed inside a body")
            writer.write(data)
            n -= len(data)
            await writer.drain()
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadMessage(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            await copy_body(reader, writer, ("length", size + 2))
        await writer.drain()
    elif kind == "close":
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
