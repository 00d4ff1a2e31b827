#!/bin/sh
# ValidateService of the broken revision: its health endpoint was never shipped, so the check
# fails after the files are installed and the server started.
port="${WEB_PORT:-8080}"
sleep "${DEMO_HOOK_DELAY:-0}"
exec python3 - "$port" <<'PY'
import sys
import time
import urllib.error
import urllib.request

url = "http://127.0.0.1:%s/healthz" % sys.argv[1]
deadline = time.time() + 15
while True:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError as error:
        print("health check %s answered %d %s" % (url, error.code, error.reason), file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        if time.time() > deadline:
            print("health check %s did not answer: %s" % (url, error), file=sys.stderr)
            sys.exit(1)
        time.sleep(0.1)
        continue
    print("healthy")
    sys.exit(0)
PY
