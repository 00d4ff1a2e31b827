#!/bin/sh
# ValidateService: the server must answer over HTTP with this revision's version.
port="${WEB_PORT:-8080}"
sleep "${DEMO_HOOK_DELAY:-0}"
expected=$(cat "$(dirname "$0")/../public/version.txt")
exec python3 - "$port" "$expected" <<'PY'
import sys
import time
import urllib.request

port, expected = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s/version.txt" % port
deadline = time.time() + 15
while True:
    try:
        body = urllib.request.urlopen(url, timeout=2).read().decode().strip()
    except Exception as error:  # not up yet, or refused
        if time.time() > deadline:
            print("%s did not answer: %s" % (url, error), file=sys.stderr)
            sys.exit(1)
        time.sleep(0.1)
        continue
    if body != expected:
        print("%s serves version %r, expected %r" % (url, body, expected), file=sys.stderr)
        sys.exit(1)
    print("%s serves version %s" % (url, body))
    sys.exit(0)
PY
