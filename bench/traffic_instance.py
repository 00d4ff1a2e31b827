"""An application instance for bench/traffic_steps.py, started by the revision's
ApplicationStart hook in place of tests/traffic/backend.py (same arguments):

    python traffic_instance.py --port P --version v1 [--health-status 200]

It prints `listening <port>`, then serves HTTP/1.1 with keep-alive: /healthz answers
--health-status; any other path answers the version (body and X-Version), and
/stream?seconds=S sends the head at once and the body S seconds later. Every request but the
health checks is logged when its answer is written, as "<version> <received> <answered>" (Unix
times) appended to $STATE/requests.log: from it the benchmark knows when the last request an
instance was serving ended, the floor of a BlockTraffic drain. Stdlib only, so the hook can run
it as a script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from urllib.parse import parse_qs, urlsplit


class Instance(asyncio.Protocol):
    def __init__(self, version: str, health: int, log) -> None:
        self.version = version
        self.health = health
        self.log = log
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.answer(head.split(b"\r\n", 1)[0].decode("latin-1"))

    def answer(self, first_line: str) -> None:
        received = time.time()
        url = urlsplit(first_line.split(" ")[1] if " " in first_line else "/")
        if url.path == "/healthz":
            self.transport.write(self.head(self.health, 7) + b"health\n")
            return
        body = f"{self.version}\n".encode()
        seconds = float(parse_qs(url.query).get("seconds", ["0"])[0])
        if url.path == "/stream" and seconds > 0:
            self.transport.write(self.head(200, len(body)))
            asyncio.get_running_loop().call_later(seconds, self.finish, body, received)
        else:
            self.transport.write(self.head(200, len(body)) + body)
            self.logged(received)

    def finish(self, body: bytes, received: float) -> None:
        if not self.transport.is_closing():
            self.transport.write(body)
            self.logged(received)

    def logged(self, received: float) -> None:
        self.log.write(f"{self.version} {received:.6f} {time.time():.6f}\n")

    def head(self, status: int, length: int) -> bytes:
        return (
            f"HTTP/1.1 {status} OK\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n"
            f"X-Version: {self.version}\r\n\r\n"
        ).encode()


async def serve(port: int, version: str, health: int) -> None:
    log_path = os.path.join(os.environ.get("STATE", "."), "requests.log")
    with open(log_path, "a", buffering=1) as log:  # line-buffered: readable while running
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Instance(version, health, log), "127.0.0.1", port, reuse_address=True
        )
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--health-status", type=int, default=200)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.version, args.health_status))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
