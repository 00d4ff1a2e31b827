"""A small host for the hosting tests: `python -m tests.hosting.echo_host --folder F [--fail]`.
It marks in its folder when what it hosts opens and closes, and when a call is cancelled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from engine.hosting.daemon import HostPlace, serve_host
from engine.hosting.rpc import Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    folder: Path = args.folder

    @contextlib.asynccontextmanager
    async def hosted() -> AsyncIterator[Mapping[str, Handler]]:
        if args.fail:
            raise ValueError("port 1 is not free")
        (folder / "opened").touch()

        async def echo(value: object) -> object:
            return value

        async def sleep(seconds: float) -> str:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                (folder / "cancelled").touch()
                raise
            return "slept"

        async def fail(message: str) -> None:
            raise ValueError(message)

        try:
            yield {"echo": echo, "sleep": sleep, "fail": fail}
        finally:
            (folder / "closed").touch()

    return serve_host(HostPlace(folder), hosted)


if __name__ == "__main__":
    raise SystemExit(main())
