"""Test fleets: a workspace of local instances and revisions whose hooks fail or hang on cue.

Each hook script looks at the instance's environment: `FAIL_ON="<event> <event>@<version>"` makes
those events' scripts fail (for every revision, or only that version), `HANG_ONCE_ON` hangs
only the first time, `HOOK_SLEEP` slows every hook down, `WAIT_FOR_FILE` holds every hook until that file exists, `HANG_ON=<event>` makes it sleep (recording its pid), so tests choose failures
per instance through the workspace, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import signal
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from tests.host.harness import write_tree

HOOK = textwrap.dedent(
    """\
    #!/bin/sh
    echo "$LIFECYCLE_EVENT on $INSTANCE_NAME ({version})"
    sleep "${{HOOK_SLEEP:-0}}"
    while [ -n "${{WAIT_FOR_FILE:-}}" ] && [ ! -e "$WAIT_FOR_FILE" ]; do sleep 0.05; done
    case " ${{FAIL_ON:-}} " in
      *" $LIFECYCLE_EVENT "*|*" $LIFECYCLE_EVENT@{version} "*) echo "failing on purpose" >&2; exit 3;;
    esac
    if [ "${{HANG_ON:-}}" = "$LIFECYCLE_EVENT" ] || [ "${{HANG_ON:-}}" = "$LIFECYCLE_EVENT@{version}" ]; then
      sleep 300 &
      echo $! >> "$PID_FILE"
      echo $$ >> "$PID_FILE"
      wait
    fi
    if [ "${{HANG_ONCE_ON:-}}" = "$LIFECYCLE_EVENT" ] && [ ! -e "$PID_FILE.$INSTANCE_NAME.once" ]; then
      touch "$PID_FILE.$INSTANCE_NAME.once"
      sleep 300 &
      echo $! >> "$PID_FILE"
      echo $$ >> "$PID_FILE"
      wait
    fi
    exit 0
    """
)
EVENTS = ("ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")


def make_revision(root: Path, version: str, files: Mapping[str, str] | None = None) -> Path:
    """A revision folder installing `files` under /srv/app, with a script for every hook."""
    files = dict(files or {"index.html": f"<h1>{version}</h1>\n", "version.txt": f"{version}\n"})
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": {e: [{"location": f"hooks/{e}.sh", "timeout": 120}] for e in EVENTS},
    }
    tree = {"appspec.yml": yaml.safe_dump(appspec, sort_keys=False)}
    tree.update({f"site/{name}": content for name, content in files.items()})
    tree.update({f"hooks/{e}.sh": HOOK.format(version=version) for e in EVENTS})
    return write_tree(root / version, tree)


def write_workspace(
    folder: Path,
    count: int,
    *,
    config: str = "CodeDeployDefault.AllAtOnce",
    env: Mapping[str, Mapping[str, str]] | None = None,
    auto_rollback: Sequence[str] = (),
    triggers: Sequence[Mapping] = (),
    custom_configs: Mapping[str, Mapping] | None = None,
    settings: Mapping | None = None,
) -> Path:
    """deploydeck.yml with application `app`, group `fleet` of `count` local instances i01..."""
    instances = {}
    for index in range(1, count + 1):
        name = f"i{index:02d}"
        environment = {"INSTANCE_NAME": name, "PID_FILE": str(folder / "pids.txt")}
        environment.update((env or {}).get(name, {}))
        instances[name] = {"tags": {"role": "web"}, "environment": environment}
    group: dict = {"deployment_config": config, "tag_filters": [{"key": "role", "value": "web"}]}
    if auto_rollback:
        group["auto_rollback"] = {"enabled": True, "events": list(auto_rollback)}
    if triggers:
        group["triggers"] = list(triggers)
    document: dict = {
        "settings": {"kill_grace_seconds": 1, **(settings or {})},
        "applications": {"app": {"deployment_groups": {"fleet": group}}},
        "instances": instances,
    }
    if custom_configs:
        document["deployment_configs"] = dict(custom_configs)
    path = folder / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (empty when root is missing)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def live_pids(pid_file: Path) -> list[int]:
    from tests.host.harness import pid_alive

    if not pid_file.exists():
        return []
    return [int(p) for p in pid_file.read_text().split() if pid_alive(int(p))]


def is_watchdog(pid: int) -> bool:
    """Whether `pid` is a runner's watchdog, forked (named by its comm) or started."""
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    return comm == "dd-watchdog" or "watchdog" in Path(f"/proc/{pid}/cmdline").read_text()


def kill_runner_and_watchdog(runner: int) -> None:
    """SIGKILL a runner and its watchdog first (as a kill of everything would), so the hooks
    it ran are left running for recovery to find."""
    children = Path(f"/proc/{runner}/task/{runner}/children").read_text().split()
    watchdogs = [p for p in children if is_watchdog(int(p))]
    assert len(watchdogs) == 1, watchdogs
    os.kill(int(watchdogs[0]), signal.SIGKILL)
    os.kill(runner, signal.SIGKILL)
