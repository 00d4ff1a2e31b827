"""Calls to a host over its Unix socket: one JSON request line, one JSON answer line, one
connection per call. A caller that goes away (cancelled, timed out) closes its connection, and
the host cancels the call it was running for it, so a stop reaches work done in a host."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

# Longest request or answer line (a state listing of a large group fits easily).
LINE_LIMIT = 16 * 1024 * 1024

Handler = Callable[..., Awaitable[object]]


class RemoteError(Exception):
    """A call the host ran raised an error; `kind` is its class name there."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class HostUnreachable(Exception):
    """No host answers on the socket, or it went away before answering."""


def _plain(value: object) -> object:
    """JSON for what handlers commonly return beyond JSON's own types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode(message: Mapping[str, object]) -> bytes:
    return json.dumps(message, default=_plain, separators=(",", ":")).encode() + b"\n"


async def call(socket: Path, method: str, *, timeout: float | None = None, **args: Any) -> Any:
    """Run `method(**args)` in the host listening on `socket` and return its result.
    RemoteError when it raised, HostUnreachable when no host answers, TimeoutError after
    `timeout` seconds (the call is then cancelled in the host)."""
    async with asyncio.timeout(timeout):
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket), limit=LINE_LIMIT)
        except OSError as error:  # no file, nobody listening, or a path no socket can have
            raise HostUnreachable(
                f"no host is listening on {socket} ({error.strerror or error})"
            ) from None
        try:
            writer.write(encode({"method": method, "args": args}))
            await writer.drain()
            line = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            raise HostUnreachable(f"the host on {socket} went away: {error}") from None
        finally:
            writer.close()  # closing (not waiting) also tells the host a cancelled caller left
    if not line.endswith(b"\n"):
        raise HostUnreachable(
            f"the host on {socket} closed the connection before answering {method}; "
            "see its host.log"
        )
    answer = json.loads(line)
    if "error" in answer:
        raise RemoteError(answer["error"]["kind"], answer["error"]["message"])
    return answer["result"]


async def answer_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handlers: Mapping[str, Handler],
) -> None:
    """Serve one call on a connection the host accepted."""
    try:
        try:
            line = await reader.readline()
        except ValueError:  # longer than LINE_LIMIT: refused, its rest unread
            writer.write(_error("BadRequest", f"a request line is at most {LINE_LIMIT} bytes"))
            return
        if not line.endswith(b"\n"):
            return
        try:
            request = json.loads(line)
            method, args = request["method"], request.get("args", {})
            coroutine = handlers[method](**args)
        except (ValueError, KeyError, TypeError):
            writer.write(_error("BadRequest", f"not a call this host answers: {line[:200]!r}"))
            return
        work = asyncio.ensure_future(coroutine)
        left = asyncio.ensure_future(reader.read(1))  # callers send nothing more: this is EOF
        try:
            await asyncio.wait({work, left}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the host is stopping
            await _end(work)
            raise
        finally:
            left.cancel()
        if not work.done():  # the caller left: end its call, nobody is left to answer
            await _end(work)
            return
        try:
            writer.write(encode({"result": work.result()}))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the handler's failure is the caller's answer
            writer.write(_error(type(error).__name__, str(error)))
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _end(work: asyncio.Future[object]) -> None:
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work


def _error(kind: str, message: str) -> bytes:
    return encode({"error": {"kind": kind, "message": message}})
