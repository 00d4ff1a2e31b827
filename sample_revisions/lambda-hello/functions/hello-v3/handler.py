"""The demo function `hello`, version 3: a faulty release. Every call fails with the function
protocol's error line (Lambda answers it as a function error, a function URL as 502), so the
demo's `errors` alarm fires as soon as the alias sends it calls."""

import json
import sys

for line in sys.stdin:
    json.loads(line)
    error = {"errorType": "KeyError", "errorMessage": "'greeting'", "stackTrace": []}
    sys.stdout.write(json.dumps({"error": error}) + "\n")
    sys.stdout.flush()
