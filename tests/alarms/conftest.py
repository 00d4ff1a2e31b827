"""Fixtures for the alarm tests: a small web site whose error rate and latency a test switches,
a metrics exporter whose text a test changes, and a real Prometheus (Debian's) scraping it
every second, on free loopback ports with its own storage folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import require_tool


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a probe that gave up (timed out) closed its end: not the test's concern


class QuietHandler(BaseHTTPRequestHandler):
    def answer(self, status: int, body: bytes, content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class LoopbackServer:
    """An HTTP server on a free loopback port, answering from its own thread until close()."""

    def serve(self, handler: type[QuietHandler]) -> None:
        self.server = QuietServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Site(LoopbackServer):
    """A web site on a loopback port: `error_ratio` of its answers are 500s (spread evenly,
    deterministically), each answer waits `delay` seconds first."""

    def __init__(self) -> None:
        self.error_ratio = 0.0
        self.delay = 0.0
        self.served = 0
        self._lock = threading.Lock()
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.served += 1
                    n = site.served
                    ratio, delay = site.error_ratio, site.delay
                if delay:
                    time.sleep(delay)
                failing = int(n * ratio) > int((n - 1) * ratio)
                self.answer(500 if failing else 200, b"boom\n" if failing else b"ok\n")

        self.serve(Handler)
        self.url = f"http://127.0.0.1:{self.port}/"


class Exporter(LoopbackServer):
    """Serves `/metrics` in Prometheus's text format: `lines` (e.g. 'app_error_ratio 0.1'),
    which a test replaces."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        exporter = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = "".join(f"{line}\n" for line in exporter.lines).encode()
                status = 200 if self.path.startswith("/metrics") else 404
                self.answer(status, body, "text/plain; version=0.0.4")

        self.serve(Handler)


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    def query(self, promql: str) -> list[dict]:
        """The result of an instant query (raises while Prometheus cannot answer)."""
        params = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=5) as answer:
            return json.loads(answer.read())["data"]["result"]

    def wait_for(self, promql: str) -> list[dict]:
        """Poll until `promql` returns data (for a comparison query: until it holds)."""
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                result = self.query(promql)
            except OSError:
                result = []
            if result:
                return result
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    yield running
    running.close()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    running = Exporter()
    yield running
    running.close()


@pytest.fixture(scope="module")
def prometheus(
    exporter: Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        running.wait_for('up{job="exporter"} == 1')  # the first scrape happened
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def settle(condition) -> None:
    """Wait (real time, bounded by pytest-timeout) until `condition()` holds."""
    while not condition():
        await asyncio.sleep(0.01)


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie left for a non-reaping init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
