"""The demo function `hello`, version 2: a worker of deploydeck's function protocol (one JSON
request per line on stdin, one {"result": ...} line on stdout)."""

import json
import sys

GREETING = "hello from version 2"

for line in sys.stdin:
    request = json.loads(line)
    name = request["event"].get("name", "world")
    reply = {"greeting": f"{GREETING}, {name}", "version": request["context"]["functionVersion"]}
    sys.stdout.write(json.dumps({"result": reply}) + "\n")
    sys.stdout.flush()
