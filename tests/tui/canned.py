"""A canned workspace for console snapshots: fixed paths, fixed revisions, a fixed journal.

Everything the console draws comes from here, so nothing depends on the machine, the checkout
location or the time the test runs: the workspace lives at /tmp/deploydeck-snapshots/<name>
(wiped and rebuilt each time), revision files get explicit modes (their sha256 covers modes),
every event carries a fixed epoch time, and the app reads a frozen clock.

The story in the journal, application `web`, group `fleet` (8 instances, HalfAtATime):
  d-SNAPSHOT1  web-v1      Succeeded on all 8
  d-SNAPSHOT2  web-broken  Failed: batch 1 fails ValidateService, batch 2 Skipped, rolled back
  d-SNAPSHOT3  web-v1      the automatic rollback of d-SNAPSHOT2 to web-1..4, Succeeded
  d-SNAPSHOT4  web-v2      running (optional): web-1, web-2 done, web-3, web-4 InProgress,
                           batch 2 not started; its engine pid is this test process
"""

from __future__ import annotations

import os
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import yaml

import engine.store as store_module
from engine import events as ev
from engine.api import Engine
from engine.clock import ManualClock
from engine.model import (
    CREATOR_ROLLBACK,
    SERVER_IN_PLACE_EVENTS,
    AutoRollback,
    DeploymentInfo,
    DeploymentOptions,
    Diagnostics,
    RevisionRef,
    RollbackInfo,
)
from engine.workspace import load_workspace
from tests.raw_store import raw_store

ROOT = Path("/tmp/deploydeck-snapshots")
APP = "web"
GROUP = "fleet"
FLEET = tuple(f"web-{i}" for i in range(1, 9))
BASE_PORT = 8081

# 2025-06-02 (a Monday), UTC. The console's clock is frozen at NOW.
T_REGISTER = 1_748_851_200.0  # 08:00:00
T_FIRST = 1_748_854_800.0  # 09:00:00
T_BROKEN = 1_748_858_400.0  # 10:00:00
T_RUNNING = 1_748_866_500.0  # 12:15:00
NOW = 1_748_866_680.0  # 12:18:00

# Seconds each lifecycle event takes (the instance's index adds a little, as real runs vary).
DURATIONS = {
    "ApplicationStop": 1.2,
    "DownloadBundle": 0.4,
    "BeforeInstall": 2.1,
    "Install": 0.6,
    "AfterInstall": 3.4,
    "ApplicationStart": 5.2,
    "ValidateService": 2.8,
}
SCRIPTS = {
    "ApplicationStop": "scripts/stop.sh",
    "BeforeInstall": "scripts/deps.sh",
    "AfterInstall": "scripts/config.sh",
    "ApplicationStart": "scripts/start.sh",
    "ValidateService": "scripts/validate.sh",
}
AUTO_ROLLBACK = AutoRollback(True, ("DEPLOYMENT_FAILURE",))

WORKSPACE = {
    "applications": {
        APP: {
            "deployment_groups": {
                GROUP: {
                    "deployment_config": "CodeDeployDefault.HalfAtATime",
                    "tag_filters": [{"key": "role", "value": "web"}],
                    "auto_rollback": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
                },
                "canary": {
                    "deployment_config": "CodeDeployDefault.OneAtATime",
                    "tag_filters": [{"key": "role", "value": "canary"}],
                },
            }
        }
    },
    "instances": {
        **{
            name: {"tags": {"role": "web"}, "environment": {"WEB_PORT": str(BASE_PORT + i)}}
            for i, name in enumerate(FLEET)
        },
        **{
            f"canary-{i}": {
                "tags": {"role": "canary"},
                "environment": {"WEB_PORT": str(BASE_PORT + len(FLEET) + i - 1)},
            }
            for i in (1, 2)
        },
    },
}


def _script(body: str) -> str:
    return "#!/bin/sh\n" + textwrap.dedent(body).lstrip()


APPSPEC = (
    "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\nhooks:\n"
    + "".join(
        f"  {event}:\n    - location: {script}\n      timeout: 120\n"
        for event, script in SCRIPTS.items()
    )
)


def _revision_tree(version: str, healthy: bool) -> dict[str, str]:
    """A revision's files, as literal text: their sha256 shows on screen, so no library
    (a YAML dumper) may change a byte of them."""
    validate = (
        'echo "GET http://127.0.0.1:$WEB_PORT/version.txt -> 200"\n'
        if healthy
        else 'echo "GET http://127.0.0.1:$WEB_PORT/health -> 404"\n'
        'echo "health check failed: expected 200, got 404" >&2\nexit 1\n'
    )
    return {
        "appspec.yml": APPSPEC,
        "site/index.html": f"<h1>web {version}</h1>\n",
        "site/version.txt": f"{version}\n",
        "scripts/stop.sh": _script('echo "stopping web on port $WEB_PORT"'),
        "scripts/deps.sh": _script('echo "checking python3: ok"'),
        "scripts/config.sh": _script('echo "writing /srv/app/config.json"'),
        "scripts/start.sh": _script('echo "starting http.server on 127.0.0.1:$WEB_PORT"'),
        "scripts/validate.sh": _script(validate),
    }


def _write_revision(folder: Path, tree: dict[str, str]) -> Path:
    """Files with explicit modes (directories 755, scripts 755, others 644): no umask leaks in."""
    for relative, content in tree.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o755 if content.startswith("#!") else 0o644)
    for directory in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    return folder


@dataclass
class Journal:
    """Events of one deployment, with times, built in order. `hosts` is the folder holding
    the local instances' folders."""

    deployment_id: str
    hosts: str
    events: list[ev.Event] = field(default_factory=list)

    def add(self, cls: type[ev.Event], time: float, **fields: object) -> None:
        self.events.append(cls(self.deployment_id, time, **fields))  # type: ignore[call-arg]


def _lines(event: str, port: int) -> list[tuple[str, str]]:
    return {
        "ApplicationStop": [("stdout", f"stopping web on port {port}")],
        "BeforeInstall": [("stdout", "checking python3: ok")],
        "AfterInstall": [("stdout", "writing /srv/app/config.json")],
        "ApplicationStart": [("stdout", f"starting http.server on 127.0.0.1:{port}")],
        "ValidateService": [("stdout", f"GET http://127.0.0.1:{port}/version.txt -> 200")],
    }.get(event, [])


BROKEN_LINES = [
    ("stdout", "GET http://127.0.0.1:{port}/health -> 404"),
    ("stderr", "health check failed: expected 200, got 404"),
]


def _run_instance(
    journal: Journal,
    instance: str,
    start: float,
    revision: RevisionRef,
    *,
    fail_on: str | None = None,
    until: str | None = None,
) -> float:
    """One instance through the lifecycle from `start`: it succeeds, fails `fail_on`, or is
    still running `until` (started, not finished). Returns when it ended."""
    index = FLEET.index(instance) if instance in FLEET else 0
    port = BASE_PORT + index
    agent = f"{journal.hosts}/{instance}/agent/{APP}.{GROUP}/{journal.deployment_id}"
    t = start
    journal.add(ev.InstanceStatusChanged, t, instance=instance, status="InProgress")
    for event in SERVER_IN_PLACE_EVENTS:
        t += 0.01
        journal.add(ev.LifecycleEventStarted, t, instance=instance, event=event)
        took = DURATIONS[event] + index * 0.3
        script = SCRIPTS.get(event)
        failing = event == fail_on
        lines = (
            [(s, line.format(port=port)) for s, line in BROKEN_LINES]
            if failing
            else _lines(event, port)
        )
        if script:
            journal.add(ev.ScriptStarted, t + 0.01, instance=instance, event=event, script=script)
            for n, (stream, line) in enumerate(lines):
                journal.add(
                    ev.HookOutput,
                    t + 0.02 + n * 0.01,
                    instance=instance,
                    event=event,
                    script=script,
                    stream=stream,
                    line=line + "\n",
                )
        if event == until:
            return t
        t += took
        if failing:
            tail = "".join(f"[{stream}]{line}\n" for stream, line in lines)
            journal.add(
                ev.LifecycleEventFinished,
                t,
                instance=instance,
                event=event,
                status="Failed",
                diagnostics=Diagnostics(
                    "ScriptFailed",
                    script,
                    f"Script at specified location: {script} failed with exit code 1",
                    tail,
                    1,
                ),
            )
            journal.add(ev.InstanceStatusChanged, t + 0.01, instance=instance, status="Failed")
            return t + 0.01
        note = {
            "DownloadBundle": f"unpacked the directory bundle into {agent}/deployment-archive",
            "Install": "installed 2 files, created 2 directories, set permissions on 0 paths",
        }.get(event, "")
        if event == "Install":
            journal.add(
                ev.InstanceRevisionChanged, t, instance=instance, revision_sha256=revision.sha256
            )
        journal.add(
            ev.LifecycleEventFinished,
            t,
            instance=instance,
            event=event,
            status="Succeeded",
            note=note,
        )
    t += 0.01
    journal.add(ev.InstanceStatusChanged, t, instance=instance, status="Succeeded")
    return t


def _skip_instance(journal: Journal, instance: str, t: float) -> None:
    for event in SERVER_IN_PLACE_EVENTS:
        journal.add(ev.LifecycleEventFinished, t, instance=instance, event=event, status="Skipped")
    journal.add(ev.InstanceStatusChanged, t, instance=instance, status="Skipped")


def _created(
    journal: Journal,
    time: float,
    revision: RevisionRef,
    previous: RevisionRef | None,
    instances: tuple[str, ...],
    *,
    creator: str = "user",
    description: str = "",
    rolls_back: str | None = None,
    minimum: int = 4,
) -> None:
    info = DeploymentInfo(
        id=journal.deployment_id,
        application=APP,
        deployment_group=GROUP,
        config_name="CodeDeployDefault.HalfAtATime",
        status="Created",
        revision=revision,
        creator=creator,
        description=description,
        previous_revision=previous,
        create_time=time,
        options=DeploymentOptions(auto_rollback=AUTO_ROLLBACK),
        rollback=RollbackInfo(rollback_triggering_deployment_id=rolls_back),
    )
    journal.add(ev.DeploymentCreated, time, deployment=info)
    journal.add(
        ev.InstancesTargeted,
        time + 0.03,
        instances=instances,
        hosts=tuple(f"local:{journal.hosts}/{n}" for n in instances),
        lifecycle_events=SERVER_IN_PLACE_EVENTS,
        minimum_healthy=minimum,
    )
    journal.add(ev.DeploymentStatusChanged, time + 0.04, status="InProgress")


def _journal(revisions: dict[str, RevisionRef], folder: Path, running: bool) -> list[ev.Event]:
    v1, v2, broken = revisions["web-v1"], revisions["web-v2"], revisions["web-broken"]
    hosts = f"{folder}/.deploydeck/instances"

    # d-SNAPSHOT1: web-v1 everywhere, two batches of four.
    first = Journal("d-SNAPSHOT1", hosts)
    _created(first, T_FIRST, v1, None, FLEET)
    t = T_FIRST + 0.05
    for batch, members in enumerate((FLEET[:4], FLEET[4:]), 1):
        first.add(ev.BatchStarted, t, batch=batch, instances=members)
        t = max(_run_instance(first, name, t + 0.01, v1) for name in members)
    first.add(
        ev.DeploymentStatusChanged,
        t + 0.01,
        status="Succeeded",
        message="8 of 8 instances succeeded.",
    )

    # d-SNAPSHOT2: web-broken fails ValidateService on batch 1; batch 2 is Skipped.
    broken_run = Journal("d-SNAPSHOT2", hosts)
    _created(broken_run, T_BROKEN, broken, v1, FLEET)
    t = T_BROKEN + 0.05
    broken_run.add(ev.BatchStarted, t, batch=1, instances=FLEET[:4])
    t = max(
        _run_instance(broken_run, name, t + 0.01, broken, fail_on="ValidateService")
        for name in FLEET[:4]
    )
    for name in FLEET[4:]:
        _skip_instance(broken_run, name, t + 0.01)
    t += 0.02
    broken_run.add(
        ev.DeploymentStatusChanged,
        t,
        status="Failed",
        error_code="HEALTH_CONSTRAINTS",
        message="Too many instance failures (HEALTH_CONSTRAINTS): 4 of 8 instances failed "
        "(0 succeeded, 4 skipped); the deployment needs at least 4 healthy (FLEET_PERCENT 50).",
    )
    broken_run.add(
        ev.RollbackLinked,
        t + 0.01,
        rollback_deployment_id="d-SNAPSHOT3",
        message="Rollback d-SNAPSHOT3 in progress",
    )

    # d-SNAPSHOT3: the automatic rollback to web-v1 of the four instances d-SNAPSHOT2 touched.
    rollback = Journal("d-SNAPSHOT3", hosts)
    start = t + 0.02
    _created(
        rollback,
        start,
        v1,
        v1,
        FLEET[:4],
        creator=CREATOR_ROLLBACK,
        description="Rollback of d-SNAPSHOT2 to revision " + v1.short(),
        rolls_back="d-SNAPSHOT2",
        minimum=2,
    )
    t = start + 0.05
    for batch, members in enumerate((FLEET[:2], FLEET[2:4]), 1):
        rollback.add(ev.BatchStarted, t, batch=batch, instances=members)
        t = max(_run_instance(rollback, name, t + 0.01, v1) for name in members)
    rollback.add(
        ev.DeploymentStatusChanged, t + 0.01, status="Succeeded", message="4 of 4 succeeded."
    )
    broken_run.add(
        ev.RollbackLinked,
        t + 0.02,
        message="Rolled back by d-SNAPSHOT3, which succeeded",
    )
    for journal in (first, broken_run, rollback):
        journal.events.sort(key=lambda e: e.time)  # stable: an instance's events keep order
    finished = [*first.events, *broken_run.events[:-1], *rollback.events, broken_run.events[-1]]
    if not running:
        return finished

    # d-SNAPSHOT4: web-v2, batch 1 under way, batch 2 not started; its engine is this process.
    live = Journal("d-SNAPSHOT4", hosts)
    _created(live, T_RUNNING, v2, v1, FLEET)
    # A live engine pid: the console sees a running deployment, not an interrupted one.
    live.add(ev.EngineAttached, T_RUNNING + 0.04, pid=os.getpid())
    t = T_RUNNING + 0.05
    live.add(ev.BatchStarted, t, batch=1, instances=FLEET[:4])
    _run_instance(live, "web-1", t + 0.01, v2)
    _run_instance(live, "web-2", t + 0.01, v2)
    _run_instance(live, "web-3", t + 0.01, v2, until="ApplicationStart")
    _run_instance(live, "web-4", t + 0.01, v2, until="AfterInstall")
    live.events.sort(key=lambda e: e.time)
    return [*finished, *live.events]


def build_workspace(name: str, *, running: bool = True) -> Path:
    """Wipe and rebuild /tmp/deploydeck-snapshots/<name>; returns its deploydeck.yml."""
    folder = ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    path = folder / "deploydeck.yml"
    path.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    for instance in WORKSPACE["instances"]:
        (folder / ".deploydeck" / "instances" / instance).mkdir(parents=True)
    engine = Engine(load_workspace(path).unwrap())
    try:
        revisions = {}
        for offset, (version, healthy, description) in enumerate(
            (
                ("web-v1", True, "the web app, version 1"),
                ("web-v2", True, "version 2: adds a changelog page"),
                ("web-broken", False, "installs, then fails ValidateService"),
            )
        ):
            source = _write_revision(
                folder / "revisions" / version, _revision_tree(version, healthy)
            )
            # The store stamps registrations with time.time(): fix it (it orders the list).
            clock = SimpleNamespace(time=lambda offset=offset: T_REGISTER + offset * 60)
            with patch.object(store_module, "time", clock):
                revisions[version] = engine.register_revision(APP, source, "directory", description)
        raw_store(engine).append_many(_journal(revisions, folder, running))
    finally:
        engine.close()
    return path


def frozen_clock() -> ManualClock:
    return ManualClock(NOW)
