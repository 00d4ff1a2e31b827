"""The built-in demo workspace `deploydeck` opens when there is no deploydeck.yml here.

Twelve local instances in two deployment groups of application `web` (`fleet`: 8 instances,
HalfAtATime with automatic rollback; `canary`: 4 instances, OneAtATime), the sample web app's
revisions registered, and one custom config. Each instance serves the sample app on its own
port; hooks pause a moment (DEMO_HOOK_DELAY) so a deployment can be watched and stopped.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import yaml

from engine.api import Engine
from engine.workspace import load_workspace

SAMPLES = Path(__file__).resolve().parent.parent / "sample_revisions"
DEMO_REVISIONS = (
    ("web-v1", "the sample web app, version 1"),
    ("web-v2", "version 2: adds a changelog page"),
    ("web-broken", "installs, then fails ValidateService"),
)
FLEET_SIZE = 8
CANARY_SIZE = 4
HOOK_DELAY_SECONDS = "1"


def demo_home() -> Path:
    explicit = os.environ.get("DEPLOYDECK_DEMO_HOME")
    if explicit:
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "deploydeck" / "demo"


def _ports_free(start: int, count: int) -> bool:
    for port in range(start, start + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_port_range(count: int, first: int = 8101) -> int:
    for start in range(first, 20000, count):
        if _ports_free(start, count):
            return start
    raise RuntimeError("no free range of local ports for the demo instances")


def demo_document(base_port: int) -> dict:
    instances = {}
    names = [f"web-{i}" for i in range(1, FLEET_SIZE + 1)] + [
        f"canary-{i}" for i in range(1, CANARY_SIZE + 1)
    ]
    for offset, name in enumerate(names):
        instances[name] = {
            "tags": {"role": "canary" if name.startswith("canary") else "web"},
            "environment": {
                "WEB_PORT": str(base_port + offset),
                "DEMO_HOOK_DELAY": HOOK_DELAY_SECONDS,
            },
        }
    rollback = {"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]}
    return {
        "settings": {"kill_grace_seconds": 3},
        "applications": {
            "web": {
                "deployment_groups": {
                    "fleet": {
                        "deployment_config": "CodeDeployDefault.HalfAtATime",
                        "tag_filters": [{"key": "role", "value": "web"}],
                        "auto_rollback": rollback,
                    },
                    "canary": {
                        "deployment_config": "CodeDeployDefault.OneAtATime",
                        "tag_filters": [{"key": "role", "value": "canary"}],
                        "auto_rollback": rollback,
                    },
                }
            }
        },
        "instances": instances,
        "deployment_configs": {
            "QuarterAtATime": {
                "compute_platform": "Server",
                "minimum_healthy_hosts": {"type": "FLEET_PERCENT", "value": 75},
            }
        },
    }


HEADER = """\
# deploydeck's built-in demo workspace, written on first run.
# Application `web` has two deployment groups of local instances (folders under
# .deploydeck/instances): `fleet` (8, HalfAtATime) and `canary` (4, OneAtATime). Each instance
# serves the sample web app (sample_revisions/web-*) on its own WEB_PORT. Edit freely; delete
# this folder to start over.
"""


def ensure_demo_workspace(home: Path | None = None) -> Path:
    """The demo's deploydeck.yml, created with its revisions registered on first use."""
    home = home or demo_home()
    path = home / "deploydeck.yml"
    if path.exists():
        return path
    home.mkdir(parents=True, exist_ok=True)
    base = _free_port_range(FLEET_SIZE + CANARY_SIZE)
    text = HEADER + yaml.safe_dump(demo_document(base), sort_keys=False)
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    workspace = load_workspace(partial).unwrap()
    engine = Engine(workspace)
    try:
        for name, description in DEMO_REVISIONS:
            engine.register_revision("web", SAMPLES / name, "directory", description)
    finally:
        engine.store.close()
    partial.rename(path)
    return path
