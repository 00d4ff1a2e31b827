"""`python3 -m engine.host run|version`: the agent as a process (see protocol.py)."""

import sys

from .protocol import main

sys.exit(main(sys.argv[1:]))
