"""The store's tables as a projection of the journal: a short run read back, and a state.db
made before deployments had a platform and a style, opened and migrated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine import events as ev
from engine.model import (
    ComputePlatform,
    DeploymentInfo,
    DeploymentOption,
    DeploymentStyle,
    DeploymentType,
    Diagnostics,
    RevisionRef,
    RollbackInfo,
)
from engine.store import Store

REVISION = RevisionRef("e" * 64, "/revisions/v1", "directory")
EVENTS = ("ApplicationStop", "Install", "ValidateService")


def created(deployment_id: str = "d-PROJECT01", **fields: object) -> DeploymentInfo:
    return DeploymentInfo(
        deployment_id,
        "app",
        "web",
        "CodeDeployDefault.AllAtOnce",
        "Created",
        REVISION,
        create_time=10.0,
        **fields,  # type: ignore[arg-type]
    )


def test_a_run_is_read_back_from_its_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    d = created()
    store.append_many(
        [
            ev.DeploymentCreated(d.id, 10.0, d),
            ev.EngineAttached(d.id, 10.5, 4242),
            ev.InstancesTargeted(d.id, 11.0, ("a", "b"), ("local:/a", "local:/b"), EVENTS, 0),
            ev.DeploymentStatusChanged(d.id, 11.0, "InProgress"),
            ev.BatchStarted(d.id, 11.0, 1, ("a", "b")),
            ev.InstanceStatusChanged(d.id, 11.0, "a", "InProgress"),
            ev.InstanceStatusChanged(d.id, 11.0, "b", "InProgress"),
            *[
                e
                for name in EVENTS
                for e in (
                    ev.LifecycleEventStarted(d.id, 12.0, "a", name),
                    ev.LifecycleEventFinished(d.id, 13.0, "a", name, "Succeeded"),
                )
            ],
            ev.InstanceRevisionChanged(d.id, 13.0, "a", REVISION.sha256),
            ev.InstanceStatusChanged(d.id, 14.0, "a", "Succeeded"),
            ev.LifecycleEventStarted(d.id, 12.0, "b", "ApplicationStop"),
            ev.LifecycleEventFinished(
                d.id, 13.0, "b", "ApplicationStop", "Failed", Diagnostics("ScriptFailed", "s", "no")
            ),
            ev.LifecycleEventFinished(d.id, 13.0, "b", "Install", "Skipped"),
            ev.LifecycleEventFinished(d.id, 13.0, "b", "ValidateService", "Skipped"),
            ev.InstanceStatusChanged(d.id, 14.0, "b", "Failed"),
            ev.DeploymentStatusChanged(d.id, 15.0, "Succeeded", None, "1 of 2 succeeded"),
            ev.RollbackLinked(d.id, 15.0, message="No rollback: automatic rollback is off"),
        ]
    )
    info = store.get_deployment(d.id)
    assert (info.status, info.start_time, info.complete_time) == ("Succeeded", 11.0, 15.0)
    assert info.error_message == "1 of 2 succeeded"
    assert info.rollback.rollback_message == "No rollback: automatic rollback is off"
    a, b = info.instances
    assert (a.name, a.batch, a.status, a.start_time, a.end_time) == (
        "a",
        1,
        "Succeeded",
        11.0,
        14.0,
    )
    assert [(e.name, e.status) for e in b.events] == [
        ("ApplicationStop", "Failed"),
        ("Install", "Skipped"),
        ("ValidateService", "Skipped"),
    ]
    failed = b.failed_event()
    assert failed is not None and failed.diagnostics == Diagnostics("ScriptFailed", "s", "no")
    assert info.overview()["Succeeded"] == 1 and info.overview()["Failed"] == 1
    assert store.active_deployment("app", "web") is None  # a terminal status frees the group
    states = store.instance_states("app", "web")
    assert (states["a"].revision_sha256, states["a"].last_status) == (REVISION.sha256, "Succeeded")
    assert (states["b"].revision_sha256, states["b"].last_status) == (None, "Failed")
    assert store.last_successful_revision("app", "web") == REVISION
    store.close()


def test_platform_and_style_are_stored_and_shown(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    style = DeploymentStyle(DeploymentType.BLUE_GREEN, DeploymentOption.WITH_TRAFFIC_CONTROL)
    d = created(compute_platform=ComputePlatform.ECS, deployment_style=style)
    store.append(ev.DeploymentCreated(d.id, 10.0, d))
    info = store.get_deployment(d.id)
    assert (info.compute_platform, info.deployment_style) == (ComputePlatform.ECS, style)
    assert info.to_api()["computePlatform"] == "ECS"
    assert info.to_api()["deploymentStyle"] == {
        "deploymentType": "BLUE_GREEN",
        "deploymentOption": "WITH_TRAFFIC_CONTROL",
    }
    (entry,) = store.journal(d.id)
    assert entry.event == ev.DeploymentCreated(d.id, 10.0, d)  # the journal keeps them too
    store.close()


# The deployments table and a journal entry as deploydeck wrote them before deployments had a
# compute platform and a deployment style.
OLD_DEPLOYMENTS = """
CREATE TABLE deployments (
    id TEXT PRIMARY KEY, application TEXT NOT NULL, deployment_group TEXT NOT NULL,
    config_name TEXT NOT NULL, status TEXT NOT NULL, creator TEXT NOT NULL,
    description TEXT NOT NULL, revision TEXT NOT NULL, previous_revision TEXT,
    error_code TEXT, error_message TEXT, create_time REAL NOT NULL, start_time REAL,
    complete_time REAL, options TEXT NOT NULL, rollback_deployment_id TEXT,
    rollback_triggering_deployment_id TEXT, rollback_message TEXT, minimum_healthy INTEGER,
    engine_pid INTEGER
);
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, deployment_id TEXT NOT NULL, time REAL NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL
);
"""


def test_a_state_db_from_before_platforms_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_DEPLOYMENTS)
    revision = json.dumps({"sha256": "f" * 64, "location": "/r", "bundle_type": "tar"})
    options = json.dumps({"file_exists_behavior": "DISALLOW"})
    old.execute(
        "INSERT INTO deployments (id, application, deployment_group, config_name, status, "
        "creator, description, revision, create_time, options) "
        "VALUES ('d-OLD000001', 'app', 'web', 'CodeDeployDefault.OneAtATime', 'Succeeded', "
        "'user', '', ?, 1.0, ?)",
        (revision, options),
    )
    payload = {"deployment": {"id": "d-OLD000001", "application": "app"}}
    payload["deployment"].update(
        deployment_group="web",
        config_name="CodeDeployDefault.OneAtATime",
        status="Created",
        revision=json.loads(revision),
    )
    old.execute(
        "INSERT INTO journal (deployment_id, time, kind, payload) VALUES (?, 1.0, ?, ?)",
        ("d-OLD000001", "DeploymentCreated", json.dumps(payload)),
    )
    old.commit()
    old.close()

    store = Store(path)
    info = store.get_deployment("d-OLD000001")
    assert info.compute_platform == ComputePlatform.SERVER
    assert info.deployment_style == DeploymentStyle()
    (entry,) = store.journal("d-OLD000001")
    assert isinstance(entry.event, ev.DeploymentCreated)
    assert entry.event.deployment.kind == info.kind  # old journal entries decode with defaults
    store.close()
    Store(path).close()  # opening a migrated file again changes nothing
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(deployments)")]
    assert columns[-3:] == ["compute_platform", "deployment_type", "deployment_option"]


def test_an_automatic_rollbacks_end_reaches_its_cause_in_the_same_write(tmp_path: Path) -> None:
    """The moment the rollback's final status is stored, its cause says how it ended (a reader
    never finds the rollback done and its cause still "in progress"); a manual rollback's
    message, which names no outcome, is left as it is."""
    store = Store(tmp_path / "state.db")
    for cause_id, rollback_id, message in (
        ("d-CAUSE0001", "d-ROLLBK001", ev.rollback_in_progress("d-ROLLBK001")),
        ("d-CAUSE0002", "d-ROLLBK002", "Rolled back by d-ROLLBK002"),
    ):
        cause = created(cause_id)
        rollback = created(rollback_id, rollback=RollbackInfo(None, cause_id))
        store.append_many(
            [
                ev.DeploymentCreated(cause_id, 10.0, cause),
                ev.DeploymentStatusChanged(cause_id, 11.0, "Failed", "HEALTH_CONSTRAINTS", "x"),
                ev.DeploymentCreated(rollback_id, 12.0, rollback),
                ev.RollbackLinked(
                    cause_id, 12.0, rollback_deployment_id=rollback_id, message=message
                ),
                ev.DeploymentStatusChanged(rollback_id, 13.0, "InProgress"),
            ]
        )
        assert store.get_deployment(cause_id).rollback.rollback_message == message
        store.append(ev.DeploymentStatusChanged(rollback_id, 14.0, "Succeeded"))
    automatic = store.get_deployment("d-CAUSE0001").rollback.rollback_message
    assert automatic == "Rolled back by d-ROLLBK001, which succeeded"
    manual = store.get_deployment("d-CAUSE0002").rollback.rollback_message
    assert manual == "Rolled back by d-ROLLBK002"
