"""The demo service's task: an HTTP server on $PORT answering with its task definition's
revision (GET / -> "web:2 task ecs-svc/web/2-1", header X-Revision), healthy at /healthz."""

import http.server
import os

DEFINITION = os.environ.get("DEPLOYDECK_TASK_DEFINITION", "web:?")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{DEFINITION} task {os.environ.get('DEPLOYDECK_TASK_ID', '?')}\n".encode()
        self.send_response(200)
        self.send_header("X-Revision", DEFINITION.rsplit(":", 1)[-1])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
