"""What the traffic-control tests deploy: a web revision whose hooks run a test server, and the
quick health-check settings its load balancer uses."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.host.harness import write_tree

# Hook script pieces, indented as a `case` branch of a hook template (before its dedent); `$dir`
# is the instance's folder for the test server's pid and log. No braces: templates are
# formatted with the version afterwards.
STOP_SERVER = """\
        if [ -f "$dir/server.pid" ]; then
          pid=$(cat "$dir/server.pid")
          kill "$pid" 2>/dev/null || true
          while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
          rm -f "$dir/server.pid"
        fi ;;
"""
AWAIT_LISTENING = """\
        i=0
        until grep -q listening "$dir/server.log"; do
          i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05
        done ;;
"""

# Health checks every 0.2 s, two to pass or fail: AllowTraffic takes well under a second.
FAST_TRAFFIC = {
    "health_check": {
        "path": "/healthz",
        "interval_seconds": 0.2,
        "timeout_seconds": 1,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
    },
    "deregistration_delay_seconds": 10,
    "allow_timeout_seconds": 30,
}


def hooked_revision(root: Path, version: str, hook: str, events: Iterable[str]) -> Path:
    """Revision `version` under `root`: site/version.txt installed to /srv/app, and the script
    `hook` (formatted with the version) for each of `events`."""
    events = tuple(events)
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": {e: [{"location": f"hooks/{e}.sh", "timeout": 60}] for e in events},
    }
    tree = {"appspec.yml": yaml.safe_dump(appspec), "site/version.txt": f"{version}\n"}
    tree.update({f"hooks/{e}.sh": hook.format(version=version) for e in events})
    return write_tree(root / version, tree)
