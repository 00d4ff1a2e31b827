"""A tiny application instance for the traffic tests, run as its own process:

    python backend.py --port 0 --version v1 [--health-status 200]

It prints `listening <port>` once it accepts connections, then serves HTTP/1.1 with keep-alive:
  /                the version (body) and X-Version; X-Seen-Forwarded-For echoes X-Forwarded-For
  /slow?seconds=S  the same after S seconds
  /stream?seconds=S  the head at once, the body after S seconds
  /healthz         --health-status, for health checks
  /echo            (POST) the request body back; chunked request bodies are understood
  /upgrade         101 Switching Protocols to "echo": every line sent back upper-cased
"""

from __future__ import annotations

import argparse
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--health-status", type=int, default=200)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *a: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, pause: float = 0.0) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Version", args.version)
            self.send_header("X-Seen-Forwarded-For", self.headers.get("X-Forwarded-For", ""))
            self.end_headers()
            if pause:
                self.wfile.flush()
                time.sleep(pause)
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/upgrade":
                self.send_response(101)
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "echo")
                self.end_headers()
                while line := self.rfile.readline():
                    self.wfile.write(line.upper())
                self.close_connection = True
                return
            if url.path == "/healthz":
                self._send(args.health_status, b"health\n")
                return
            seconds = float(parse_qs(url.query).get("seconds", ["1"])[0])
            if url.path == "/slow":
                time.sleep(seconds)
            pause = seconds if url.path == "/stream" else 0.0
            self._send(200, f"{args.version}\n".encode(), pause)

        do_HEAD = do_GET

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._send(200, body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: object, client_address: object) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # health checks hang up
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
