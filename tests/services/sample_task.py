"""A sample task for the service tests: an HTTP server on $PORT answering with its task
definition's revision (from DEPLOYDECK_TASK_DEFINITION). Paths: / (the revision, header X-Revision), /healthz,
/slow?seconds=S (answers after S seconds), /exit (the process ends at once). With
HEALTHY_CHECKS=N, /healthz answers 503 after its first N checks (with SICK_FLAG=FILE, while
FILE exists); with LISTEN_GATE=FILE it
listens only once FILE exists. With
CRASH_AT_START=N the task whose id ends in -N prints a few lines and exits 3 before listening;
with PID_DIR each task notes its process id there; with CHILD each starts a helper process in
its group. With HEALTH_PATH=P, P takes /healthz's part (SICK_FLAG included) and every other /health...
path answers 404; with
PROBE_DIR each health check (any path) adds its path as a line to PROBE_DIR/<task id, / as _>."""

import http.server
import os
import sys
import threading
import time
import urllib.parse

REVISION = os.environ.get("DEPLOYDECK_TASK_DEFINITION", "?:?").rsplit(":", 1)[1]
CHECKS = [0]  # GET /healthz answered so far
COUNT_LOCK = threading.Lock()
TASK_FILE = os.environ.get("DEPLOYDECK_TASK_ID", "").replace("/", "_")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK wait

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/exit":
            os._exit(7)
        if os.environ.get("PROBE_DIR") and self.headers["User-Agent"] == "deploydeck-health":
            name = os.path.join(os.environ["PROBE_DIR"], TASK_FILE)
            with COUNT_LOCK, open(name, "a") as log:
                log.write(url.path + "\n")
        own = os.environ.get("HEALTH_PATH")
        health = url.path == (own or "/healthz")
        if own and url.path.startswith("/health") and not health:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if health and os.path.exists(os.environ.get("SICK_FLAG", "/nonexistent")):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if health and os.environ.get("HEALTHY_CHECKS"):
            with COUNT_LOCK:
                CHECKS[0] += 1
                failing = CHECKS[0] > int(os.environ["HEALTHY_CHECKS"])
            if failing:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if url.path == "/slow":
            time.sleep(float(urllib.parse.parse_qs(url.query)["seconds"][0]))
        body = f"revision {REVISION} task {os.environ.get('DEPLOYDECK_TASK_ID')}\n".encode()
        self.send_response(200)
        self.send_header("X-Revision", REVISION)
        self.send_header("X-Version", REVISION)  # what tests/traffic/loadgen.py records
        self.send_header("X-Peer-Port", str(self.client_address[1]))  # one per connection
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    print(f"sample task revision {REVISION} starting", flush=True)
    if os.environ.get("PID_DIR"):
        open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close()
    crash = os.environ.get("CRASH_AT_START")
    if crash and os.environ["DEPLOYDECK_TASK_ID"].endswith(f"-{crash}"):
        time.sleep(0.3)  # the others are up by then
        print("loading settings", flush=True)
        print("error: the settings file is missing", file=sys.stderr, flush=True)
        sys.exit(3)
    while os.environ.get("LISTEN_GATE") and not os.path.exists(os.environ["LISTEN_GATE"]):
        time.sleep(0.05)  # held back (pending) until the test opens the gate
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    if os.environ.get("CHILD"):  # a helper process in the task's group, ended with it
        threading.Thread(target=lambda: os.system("sleep 300"), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
