"""On the path of a test's deploydeck commands: a host process (`--folder` in its arguments)
waits at interpreter start until the file HOLD_HOST_START names exists, so a test can act while
a host is being started."""

import os
import sys
import time

_gate = os.environ.get("HOLD_HOST_START")
if _gate and "--folder" in sys.argv:
    while not os.path.exists(_gate):
        time.sleep(0.05)
