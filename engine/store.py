"""SQLite state beside the workspace (`.deploydeck/state.db`, WAL mode).

Every change arrives as an engine event: `append` applies it to the tables and adds it to the
append-only journal in one transaction, before anyone is shown it (ARCHITECTURE.md invariant 3). The
tables are a projection of the journal; the journal alone can replay a deployment from start to end.
One deployment per deployment group at a time is enforced here, by a unique key (ARCHITECTURE.md
invariant 6). Several processes share the file: runners write, consoles and CLI commands read and
request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine import events as ev
from engine.model import (
    FAILED,
    IN_PROGRESS,
    PENDING,
    SUCCEEDED,
    TERMINAL_STATUSES,
    AlarmStatus,
    AutoRollback,
    BlueGreenInfo,
    ComputePlatform,
    DeploymentInfo,
    DeploymentOption,
    DeploymentOptions,
    DeploymentStyle,
    DeploymentType,
    Diagnostics,
    InstanceInfo,
    InstanceTraffic,
    LifecycleEventInfo,
    RevisionRef,
    RollbackInfo,
    TrafficHealth,
    TrafficState,
)
from engine.private_files import private_database
from engine.serialize import from_data, to_data

# bound apart from `time`, which tests replace to stamp registrations with fixed times
_monotonic, _sleep, _strftime = time.monotonic, time.sleep, time.strftime

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_deployment ON journal (deployment_id, seq);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    application TEXT NOT NULL,
    deployment_group TEXT NOT NULL,
    config_name TEXT NOT NULL,
    status TEXT NOT NULL,
    creator TEXT NOT NULL,
    description TEXT NOT NULL,
    revision TEXT NOT NULL,
    previous_revision TEXT,
    error_code TEXT,
    error_message TEXT,
    create_time REAL NOT NULL,
    start_time REAL,
    complete_time REAL,
    options TEXT NOT NULL,
    rollback_deployment_id TEXT,
    rollback_triggering_deployment_id TEXT,
    rollback_message TEXT,
    minimum_healthy INTEGER,
    engine_pid INTEGER,
    compute_platform TEXT NOT NULL DEFAULT 'Server',
    deployment_type TEXT NOT NULL DEFAULT 'IN_PLACE',
    deployment_option TEXT NOT NULL DEFAULT 'WITHOUT_TRAFFIC_CONTROL'
);
CREATE INDEX IF NOT EXISTS deployments_by_group
    ON deployments (application, deployment_group, create_time);
CREATE TABLE IF NOT EXISTS active_deployments (
    application TEXT NOT NULL,
    deployment_group TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    PRIMARY KEY (application, deployment_group)
);
CREATE TABLE IF NOT EXISTS deployment_instances (
    deployment_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    position INTEGER NOT NULL,
    host TEXT NOT NULL,
    batch INTEGER,
    status TEXT NOT NULL,
    start_time REAL,
    end_time REAL,
    PRIMARY KEY (deployment_id, instance)
);
CREATE TABLE IF NOT EXISTS lifecycle_events (
    deployment_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    event TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    start_time REAL,
    end_time REAL,
    diagnostics TEXT,
    PRIMARY KEY (deployment_id, instance, event)
);
CREATE TABLE IF NOT EXISTS instance_state (
    application TEXT NOT NULL,
    deployment_group TEXT NOT NULL,
    instance TEXT NOT NULL,
    revision_sha256 TEXT,
    last_status TEXT,
    deployment_id TEXT,
    updated_at REAL,
    PRIMARY KEY (application, deployment_group, instance)
);
CREATE TABLE IF NOT EXISTS alarm_readings (
    deployment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    threshold REAL,
    message TEXT NOT NULL,
    observed_at REAL NOT NULL,
    observe_only INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, name)
);
CREATE TABLE IF NOT EXISTS instance_traffic (
    deployment_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    health TEXT NOT NULL,
    open_connections INTEGER,
    requests_served INTEGER,
    detail TEXT NOT NULL,
    observed_at REAL NOT NULL,
    PRIMARY KEY (deployment_id, instance)
);
CREATE TABLE IF NOT EXISTS blue_green (
    deployment_id TEXT PRIMARY KEY,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    application TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    location TEXT NOT NULL,
    bundle_type TEXT NOT NULL,
    description TEXT NOT NULL,
    register_time REAL NOT NULL,
    first_used_time REAL,
    last_used_time REAL,
    PRIMARY KEY (application, sha256)
);
"""

# Columns added since the first schema: a state.db made before them gets them, with the
# value every deployment had then as the default.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("deployments", "compute_platform", "TEXT NOT NULL DEFAULT 'Server'"),
    ("deployments", "deployment_type", "TEXT NOT NULL DEFAULT 'IN_PLACE'"),
    ("deployments", "deployment_option", "TEXT NOT NULL DEFAULT 'WITHOUT_TRAFFIC_CONTROL'"),
)

ORPHAN_GRACE_SECONDS = 30.0
# How long one write waits for another process's lock before it gives up (or, in a runner,
# says so and tries again); DEPLOYDECK_DB_BUSY_TIMEOUT (seconds) overrides it.
BUSY_TIMEOUT_SECONDS = 30.0
BUSY_TIMEOUT_VARIABLE = "DEPLOYDECK_DB_BUSY_TIMEOUT"
WAL_SWITCH_PAUSE_SECONDS = 0.005
LOCKED_RETRY_MAX_SECONDS = 5.0  # the longest pause between a runner's tries


class StoreError(Exception):
    """state.db cannot be used; the message says what is wrong and what to do."""


class StoreLocked(StoreError):
    """Another process holds state.db's write lock for longer than the busy timeout."""


class StoreCorrupt(StoreError):
    """state.db is not a readable SQLite database."""


def busy_timeout_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(BUSY_TIMEOUT_VARIABLE, BUSY_TIMEOUT_SECONDS)))
    except ValueError:
        return BUSY_TIMEOUT_SECONDS


def _explain(error: sqlite3.Error, path: Path, waited: float) -> StoreError:
    """The clear error for a failed statement on `path` (`waited` seconds after it began)."""
    code = getattr(error, "sqlite_errorcode", None)
    name = getattr(error, "sqlite_errorname", "") or ""
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error):
        return StoreLocked(
            f"{path} is locked by another process (waited {waited:.0f} s for it): another "
            f"deploydeck command or a tool such as sqlite3 holds a write transaction. Let it "
            f"finish, or find it with `fuser -v {path}`, then run the command again; nothing "
            "was changed"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or name in (
        "SQLITE_CORRUPT",
        "SQLITE_NOTADB",
    ):
        return StoreCorrupt(
            f"{path} is damaged ({error}): deploydeck cannot read its deployments. The journal "
            "lives in this same file and there is no other copy, so it cannot be rebuilt. "
            f"Move it aside with its -wal and -shm files (`mv {path} {path}.damaged`, and the "
            "same for the other two) and run again to start an empty history; what the "
            "instances run now stays on them, and `sqlite3 state.db.damaged .recover` may "
            "salvage some records"
        )
    if code == sqlite3.SQLITE_FULL:
        return StoreError(f"cannot write {path}: the disk holding it is full; free space there")
    return StoreError(f"cannot use {path}: {error} ({name or 'sqlite error'})")


class _Rows:
    """A statement's rows, read at once (so a damaged page fails here, not mid-loop)."""

    def __init__(self, rows: list, lastrowid: int | None) -> None:
        self.rows = rows
        self.lastrowid = lastrowid

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list:
        return self.rows

    def __iter__(self) -> Iterator:
        return iter(self.rows)


class _Database:
    """sqlite3.Connection's execute family, with each failure turned into a StoreError; in
    a runner (`on_locked` given), a lock held past the busy timeout is waited out."""

    def __init__(
        self, path: Path, busy_timeout: float, on_locked: Callable[[str], None] | None
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.on_locked = on_locked
        self.connection = self._call(
            lambda: sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        )
        self.connection.row_factory = sqlite3.Row
        _OPEN.add(self)

    def _call(self, work: Callable):
        began = _monotonic()
        pause = 0.1
        while True:
            try:
                return work()
            except sqlite3.Error as error:
                problem = _explain(error, self.path, _monotonic() - began)
                if not isinstance(problem, StoreLocked) or self.on_locked is None:
                    raise problem from None
                self.on_locked(f"{problem}; trying again in {pause:.1f} s")
                _sleep(pause)
                pause = min(pause * 2, LOCKED_RETRY_MAX_SECONDS)

    def execute(self, sql: str, args: Sequence = ()) -> _Rows:
        def run() -> _Rows:
            cursor = self.connection.execute(sql, args)
            return _Rows(cursor.fetchall(), cursor.lastrowid)

        return self._call(run)

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        rows = list(rows)
        self._call(lambda: self.connection.executemany(sql, rows))

    def executescript(self, script: str) -> None:
        self._call(lambda: self.connection.executescript(script))

    def begin_within(self, seconds: float) -> bool:
        """BEGIN IMMEDIATE, waiting at most `seconds` for another process's lock; False
        (no transaction) when it is still held."""
        self.connection.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.Error as error:
            problem = _explain(error, self.path, seconds)
            if isinstance(problem, StoreLocked):
                return False
            raise problem from None
        finally:
            self.connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def close(self) -> None:
        _OPEN.discard(self)
        self.connection.close()


# the connections this process holds open: SQLite keeps per-file lock state in the process,
# which a forked child would inherit without the locks themselves
_OPEN: weakref.WeakSet[_Database] = weakref.WeakSet()


def log_locked(message: str) -> None:
    """A runner's note, in its log, that it waits for state.db."""
    stamp = _strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} waiting for the state database: {message}", file=sys.stderr, flush=True)


class DeploymentLimitExceeded(Exception):
    """Another deployment of the group is still active (CodeDeploy's exception name)."""

    def __init__(self, application: str, group: str, active_id: str) -> None:
        self.active_id = active_id
        super().__init__(
            f"Deployment group {application}/{group} already has an active deployment, "
            f"{active_id}; wait for it, or stop it with `deploydeck stop-deployment "
            f"--deployment-id {active_id}`"
        )


class DeploymentNotFound(Exception):
    def __init__(self, deployment_id: str) -> None:
        super().__init__(f"No deployment {deployment_id} in this workspace")


@dataclass(frozen=True)
class InstanceState:
    """What an instance of a group runs now and how its last deployment ended."""

    instance: str
    revision_sha256: str | None
    last_status: str | None
    deployment_id: str | None


@dataclass(frozen=True)
class RegisteredRevision:
    application: str
    revision: RevisionRef
    description: str
    register_time: float
    first_used_time: float | None
    last_used_time: float | None


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` runs (a zombie, which has exited, does not); one we may not
    look at counts as alive."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:  # Linux: the state letter after the command name in /proc/PID/stat (Z: zombie)
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError):
        return not os.path.isdir("/proc/self") and _pid_alive_portable(pid)
    except PermissionError:
        return True
    except (OSError, IndexError):
        return _pid_alive_portable(pid)


def _pid_alive_portable(pid: int) -> bool:
    """pid_alive where /proc cannot tell."""
    import psutil  # asked only where a deployment is active: not every command start-up

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:
        return True


class Store:
    """The state database. Every failure is a StoreError with a clear message; with
    `wait_when_locked` (a runner), a write blocked by another process's lock is retried with
    a growing pause, each try reported through `on_locked`, until it goes through."""

    def __init__(
        self,
        path: Path,
        *,
        wait_when_locked: bool = False,
        on_locked: Callable[[str], None] = log_locked,
    ) -> None:
        self.path = path
        private_database(path)  # 0600, like the -wal and -shm files SQLite makes beside it
        path.parent.mkdir(parents=True, exist_ok=True)
        timeout = busy_timeout_seconds()
        self.db = self._connect(_Database(path, timeout, on_locked if wait_when_locked else None))
        self._use_wal()
        self.db.executescript(SCHEMA)
        self._migrate()

    def _use_wal(self) -> None:
        """Switch the file to WAL (once: the mode is kept in it). SQLite answers BUSY at once,
        without its busy handler, while another process opens the same new file, so the
        switch is tried again within the busy timeout."""
        began = _monotonic()
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except StoreLocked:
                if _monotonic() - began >= self.db.busy_timeout:
                    raise
                _sleep(WAL_SWITCH_PAUSE_SECONDS)

    @staticmethod
    def _connect(db: _Database) -> _Database:
        """A connection's own settings, on a new connection."""
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(db.busy_timeout * 1000)}")
        return db

    def sole_connection(self) -> bool:
        """Whether this is the only connection this process holds to its database file."""
        return all(db is self.db or db.path.resolve() != self.path.resolve() for db in _OPEN)

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        """Closed inside the block, connected again after it: a process forked inside it
        (with no other connection to the file, see `sole_connection`) starts free of it."""
        old = self.db
        old.close()
        try:
            yield
        finally:
            self.db = self._connect(_Database(old.path, old.busy_timeout, old.on_locked))

    def _migrate(self) -> None:
        """Add the columns an older state.db lacks; checked again inside the write lock, so
        two processes opening the same old file add each column once."""
        if not self._missing_columns():
            return
        with _transaction(self.db):
            for table, column, declaration in self._missing_columns():
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def _missing_columns(self) -> list[tuple[str, str, str]]:
        present: dict[str, set[str]] = {}
        for table, _, _ in ADDED_COLUMNS:
            if table not in present:
                rows = self.db.execute(f"PRAGMA table_info({table})")
                present[table] = {row["name"] for row in rows}
        return [c for c in ADDED_COLUMNS if c[1] not in present[c[0]]]

    def close(self) -> None:
        self.db.close()

    # ---- writing ------------------------------------------------------------------------

    def append(self, event: ev.Event) -> int:
        """Apply one event and journal it, atomically; returns its sequence number."""
        return self.append_many([event])[-1]

    def append_many(self, batch: Sequence[ev.Event]) -> list[int]:
        with _transaction(self.db):
            return self._write(batch)

    def try_append_many(self, batch: Sequence[ev.Event], wait_seconds: float) -> bool:
        """append_many, unless another process holds the write lock for `wait_seconds`:
        then nothing is written and False is returned (so an event loop can wait it out
        without being held up)."""
        if not self.db.begin_within(wait_seconds):
            return False
        with _transaction(self.db, began=True):
            self._write(batch)
        return True

    def _write(self, batch: Sequence[ev.Event]) -> list[int]:
        seqs = []
        for event in batch:
            self._apply(event)
            cursor = self.db.execute(
                "INSERT INTO journal (deployment_id, time, kind, payload) VALUES (?, ?, ?, ?)",
                (event.deployment_id, event.time, event.kind, ev.encode(event)),
            )
            seqs.append(int(cursor.lastrowid or 0))
        return seqs

    # The events the tables are projected from (each has its `_on_<kind>`), and those only
    # the journal keeps (read back from it: hook output, stop requests, scripts to end...).
    PROJECTED: frozenset[type[ev.Event]] = frozenset(
        {
            ev.DeploymentCreated,
            ev.InstancesTargeted,
            ev.DeploymentStatusChanged,
            ev.BatchStarted,
            ev.InstanceStatusChanged,
            ev.LifecycleEventStarted,
            ev.LifecycleEventFinished,
            ev.InstanceRevisionChanged,
            ev.RollbackLinked,
            ev.EngineAttached,
            ev.AlarmEvaluated,
            ev.InstanceTrafficChanged,
            ev.BlueGreenFleets,
            ev.FleetWaitStarted,
            ev.FleetWaitEnded,
            ev.FleetTrafficMoved,
        }
    )
    JOURNAL_ONLY: frozenset[type[ev.Event]] = frozenset(
        {
            ev.ScriptStarted,
            ev.HookOutput,
            ev.InstanceConnection,
            ev.StopRequested,
            ev.Note,
            ev.TrafficShifted,
            ev.TrafficMeasured,
            ev.ShiftControlRequested,
            ev.ShiftProgressed,
            ev.TaskSetsChanged,
            ev.ContinueRequested,
        }
    )

    def _apply(self, event: ev.Event) -> None:
        if type(event) in self.PROJECTED:
            getattr(self, "_on_" + event.kind)(event)

    def _on_DeploymentCreated(self, event: ev.DeploymentCreated) -> None:
        d = event.deployment
        active = self.db.execute(
            "SELECT deployment_id FROM active_deployments "
            "WHERE application=? AND deployment_group=?",
            (d.application, d.deployment_group),
        ).fetchone()
        if active is not None:
            raise DeploymentLimitExceeded(d.application, d.deployment_group, active[0])
        self.db.execute(
            "INSERT INTO active_deployments VALUES (?, ?, ?)",
            (d.application, d.deployment_group, d.id),
        )
        self.db.execute(
            """INSERT INTO deployments (id, application, deployment_group, config_name, status,
                creator, description, revision, previous_revision, create_time, options,
                rollback_triggering_deployment_id, compute_platform, deployment_type,
                deployment_option)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                d.id,
                d.application,
                d.deployment_group,
                d.config_name,
                d.status,
                d.creator,
                d.description,
                json.dumps(to_data(d.revision)),
                json.dumps(to_data(d.previous_revision)) if d.previous_revision else None,
                d.create_time,
                json.dumps(to_data(d.options)),
                d.rollback.rollback_triggering_deployment_id,
                str(d.compute_platform),
                str(d.deployment_style.deployment_type),
                str(d.deployment_style.deployment_option),
            ),
        )
        self.db.execute(
            "UPDATE revisions SET first_used_time=COALESCE(first_used_time, ?), last_used_time=? "
            "WHERE application=? AND sha256=?",
            (event.time, event.time, d.application, d.revision.sha256),
        )

    def _on_InstanceTrafficChanged(self, event: ev.InstanceTrafficChanged) -> None:
        """The instance's last balancer state replaces its earlier one."""
        self.db.execute(
            """INSERT INTO instance_traffic (deployment_id, instance, position, state, health,
                 open_connections, requests_served, detail, observed_at)
               VALUES (?, ?, (SELECT COUNT(*) FROM instance_traffic WHERE deployment_id=?),
                 ?, ?, ?, ?, ?, ?)
               ON CONFLICT (deployment_id, instance) DO UPDATE SET state=excluded.state,
                 health=excluded.health, open_connections=excluded.open_connections,
                 requests_served=excluded.requests_served, detail=excluded.detail,
                 observed_at=excluded.observed_at""",
            (
                event.deployment_id,
                event.instance,
                event.deployment_id,
                str(event.state),
                str(event.health),
                event.open_connections,
                event.requests_served,
                event.detail,
                event.time,
            ),
        )

    def _on_AlarmEvaluated(self, event: ev.AlarmEvaluated) -> None:
        """The alarm's last reading replaces its earlier one; its position is first seen."""
        self.db.execute(
            """INSERT INTO alarm_readings (deployment_id, name, position, state, value, threshold,
                 message, observed_at, observe_only)
               VALUES (?, ?, (SELECT COUNT(*) FROM alarm_readings WHERE deployment_id=?),
                 ?, ?, ?, ?, ?, ?)
               ON CONFLICT (deployment_id, name) DO UPDATE SET state=excluded.state,
                 value=excluded.value, threshold=excluded.threshold, message=excluded.message,
                 observed_at=excluded.observed_at, observe_only=excluded.observe_only""",
            (
                event.deployment_id,
                event.name,
                event.deployment_id,
                event.state,
                event.value,
                event.threshold,
                event.message,
                event.time,
                int(event.observe_only),
            ),
        )

    def blue_green(self, deployment_id: str) -> BlueGreenInfo | None:
        """A Server blue/green deployment's fleets and waits (None for other deployments)."""
        row = self.db.execute(
            "SELECT info FROM blue_green WHERE deployment_id=?", (deployment_id,)
        ).fetchone()
        return None if row is None else from_data(BlueGreenInfo, json.loads(row["info"]))

    def _set_blue_green(self, deployment_id: str, info: BlueGreenInfo) -> None:
        self.db.execute(
            "INSERT INTO blue_green (deployment_id, info) VALUES (?, ?) "
            "ON CONFLICT (deployment_id) DO UPDATE SET info=excluded.info",
            (deployment_id, json.dumps(to_data(info))),
        )

    def _on_BlueGreenFleets(self, event: ev.BlueGreenFleets) -> None:
        self._set_blue_green(
            event.deployment_id, BlueGreenInfo(event.blue, event.green, event.copied)
        )

    def _on_FleetWaitStarted(self, event: ev.FleetWaitStarted) -> None:
        info = self.blue_green(event.deployment_id) or BlueGreenInfo()
        terminating = info.termination_wait_started or event.wait_type == "TERMINATION_WAIT"
        self._set_blue_green(
            event.deployment_id,
            dataclasses.replace(
                info,
                wait_type=event.wait_type,
                wait_deadline=event.deadline,
                wait_action=event.action,
                termination_wait_started=terminating,
            ),
        )

    def _on_FleetWaitEnded(self, event: ev.FleetWaitEnded) -> None:
        info = self.blue_green(event.deployment_id) or BlueGreenInfo()
        self._set_blue_green(
            event.deployment_id,
            dataclasses.replace(info, wait_type=None, wait_deadline=None, wait_action=""),
        )

    def _on_FleetTrafficMoved(self, event: ev.FleetTrafficMoved) -> None:
        info = self.blue_green(event.deployment_id) or BlueGreenInfo()
        self._set_blue_green(
            event.deployment_id, dataclasses.replace(info, traffic_on=event.traffic_on)
        )

    def _on_InstancesTargeted(self, event: ev.InstancesTargeted) -> None:
        self.db.executemany(
            "INSERT INTO deployment_instances (deployment_id, instance, position, host, status) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (event.deployment_id, name, i, host, PENDING)
                for i, (name, host) in enumerate(zip(event.instances, event.hosts, strict=True))
            ],
        )
        self.db.executemany(
            "INSERT INTO lifecycle_events (deployment_id, instance, event, position, status) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (event.deployment_id, name, lifecycle, j, PENDING)
                for name in event.instances
                for j, lifecycle in enumerate(event.lifecycle_events)
            ],
        )
        self.db.execute(
            "UPDATE deployments SET minimum_healthy=? WHERE id=?",
            (event.minimum_healthy, event.deployment_id),
        )

    def _on_DeploymentStatusChanged(self, event: ev.DeploymentStatusChanged) -> None:
        terminal = event.status in TERMINAL_STATUSES
        self.db.execute(
            """UPDATE deployments SET status=?,
                 error_code=COALESCE(?, error_code), error_message=COALESCE(?, error_message),
                 start_time=CASE WHEN ?=? AND start_time IS NULL THEN ? ELSE start_time END,
                 complete_time=CASE WHEN ? THEN ? ELSE complete_time END
               WHERE id=?""",
            (
                event.status,
                event.error_code,
                event.message,
                event.status,
                IN_PROGRESS,
                event.time,
                terminal,
                event.time,
                event.deployment_id,
            ),
        )
        if terminal:
            self.db.execute(
                "DELETE FROM active_deployments WHERE deployment_id=?", (event.deployment_id,)
            )
            # An automatic rollback's end is its cause's news too, in the same transaction: no
            # reader sees the rollback ended while its cause still says it is in progress (the
            # runner journals the same message for the cause right after).
            self.db.execute(
                """UPDATE deployments SET rollback_message=?
                   WHERE id=(SELECT rollback_triggering_deployment_id FROM deployments
                             WHERE id=?)
                     AND rollback_deployment_id=? AND rollback_message=?""",
                (
                    ev.rolled_back(event.deployment_id, event.status),
                    event.deployment_id,
                    event.deployment_id,
                    ev.rollback_in_progress(event.deployment_id),
                ),
            )

    def _on_BatchStarted(self, event: ev.BatchStarted) -> None:
        self.db.executemany(
            "UPDATE deployment_instances SET batch=? WHERE deployment_id=? AND instance=?",
            [(event.batch, event.deployment_id, name) for name in event.instances],
        )

    def _on_InstanceStatusChanged(self, event: ev.InstanceStatusChanged) -> None:
        started = event.status == IN_PROGRESS
        self.db.execute(
            """UPDATE deployment_instances SET status=?,
                 start_time=CASE WHEN ? THEN ? ELSE start_time END,
                 end_time=CASE WHEN ? THEN NULL ELSE ? END
               WHERE deployment_id=? AND instance=?""",
            (
                event.status,
                started,
                event.time,
                started,
                event.time,
                event.deployment_id,
                event.instance,
            ),
        )
        if event.status in (SUCCEEDED, FAILED):
            self._instance_state(event, "last_status", event.status)

    def _on_LifecycleEventStarted(self, event: ev.LifecycleEventStarted) -> None:
        self.db.execute(
            "UPDATE lifecycle_events SET status=?, start_time=? "
            "WHERE deployment_id=? AND instance=? AND event=?",
            (IN_PROGRESS, event.time, event.deployment_id, event.instance, event.event),
        )

    def _on_LifecycleEventFinished(self, event: ev.LifecycleEventFinished) -> None:
        self.db.execute(
            "UPDATE lifecycle_events SET status=?, end_time=?, diagnostics=? "
            "WHERE deployment_id=? AND instance=? AND event=?",
            (
                event.status,
                event.time,
                json.dumps(to_data(event.diagnostics)) if event.diagnostics else None,
                event.deployment_id,
                event.instance,
                event.event,
            ),
        )

    def _on_InstanceRevisionChanged(self, event: ev.InstanceRevisionChanged) -> None:
        self._instance_state(event, "revision_sha256", event.revision_sha256)

    def _instance_state(
        self,
        event: ev.InstanceStatusChanged | ev.InstanceRevisionChanged,
        column: Literal["last_status", "revision_sha256"],
        value: str,
    ) -> None:
        """Set one column of the instance's row in instance_state, made on first use."""
        app, group = self._group_of(event.deployment_id)
        self.db.execute(
            f"""INSERT INTO instance_state (application, deployment_group, instance, {column},
                 deployment_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (application, deployment_group, instance) DO UPDATE SET
                 {column}=excluded.{column}, deployment_id=excluded.deployment_id,
                 updated_at=excluded.updated_at""",
            (app, group, event.instance, value, event.deployment_id, event.time),
        )

    def _on_RollbackLinked(self, event: ev.RollbackLinked) -> None:
        self.db.execute(
            """UPDATE deployments SET
                 rollback_deployment_id=COALESCE(?, rollback_deployment_id),
                 rollback_triggering_deployment_id=COALESCE(?, rollback_triggering_deployment_id),
                 rollback_message=COALESCE(?, rollback_message)
               WHERE id=?""",
            (
                event.rollback_deployment_id,
                event.rollback_triggering_deployment_id,
                event.message,
                event.deployment_id,
            ),
        )

    def _on_EngineAttached(self, event: ev.EngineAttached) -> None:
        self.db.execute(
            "UPDATE deployments SET engine_pid=? WHERE id=?", (event.pid, event.deployment_id)
        )

    def _group_of(self, deployment_id: str) -> tuple[str, str]:
        row = self.db.execute(
            "SELECT application, deployment_group FROM deployments WHERE id=?", (deployment_id,)
        ).fetchone()
        if row is None:
            raise DeploymentNotFound(deployment_id)
        return row[0], row[1]

    def register_revision(self, application: str, revision: RevisionRef, description: str) -> None:
        self.db.execute(
            """INSERT INTO revisions (application, sha256, location, bundle_type, description,
                 register_time) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (application, sha256) DO UPDATE SET location=excluded.location,
                 bundle_type=excluded.bundle_type,
                 description=CASE WHEN excluded.description != '' THEN excluded.description
                                  ELSE description END""",
            (
                application,
                revision.sha256,
                revision.location,
                revision.bundle_type,
                description,
                time.time(),
            ),
        )

    # ---- reading ------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str, *, with_instances: bool = True) -> DeploymentInfo:
        row = self.db.execute("SELECT * FROM deployments WHERE id=?", (deployment_id,)).fetchone()
        if row is None:
            raise DeploymentNotFound(deployment_id)
        instances = self._instances(deployment_id) if with_instances else ()
        info = _deployment_from_row(row, instances, self._interrupted_at(row))
        if with_instances:
            info = dataclasses.replace(
                info,
                alarms=self.alarm_readings(deployment_id),
                traffic=self.traffic_states(deployment_id),
                blue_green=self.blue_green(deployment_id),
            )
        return info

    def alarm_readings(self, deployment_id: str) -> tuple[AlarmStatus, ...]:
        """The last reading of each of the deployment's alarms, in the order first seen."""
        return tuple(
            AlarmStatus(
                row["name"],
                row["state"],
                row["value"],
                row["threshold"],
                row["message"],
                row["observed_at"],
                bool(row["observe_only"]),
            )
            for row in self.db.execute(
                "SELECT * FROM alarm_readings WHERE deployment_id=? ORDER BY position",
                (deployment_id,),
            )
        )

    def traffic_states(self, deployment_id: str) -> tuple[InstanceTraffic, ...]:
        """Each instance's last state in the deployment's balancer, in the order first seen."""
        return tuple(
            InstanceTraffic(
                row["instance"],
                TrafficState(row["state"]),
                TrafficHealth(row["health"]),
                row["open_connections"],
                row["requests_served"],
                row["detail"],
                row["observed_at"],
            )
            for row in self.db.execute(
                "SELECT * FROM instance_traffic WHERE deployment_id=? ORDER BY position",
                (deployment_id,),
            )
        )

    def deployment_exists(self, deployment_id: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM deployments WHERE id=?", (deployment_id,)).fetchone()
            is not None
        )

    def _instances(self, deployment_id: str) -> tuple[InstanceInfo, ...]:
        events: dict[str, list[LifecycleEventInfo]] = {}
        for row in self.db.execute(
            "SELECT * FROM lifecycle_events WHERE deployment_id=? ORDER BY instance, position",
            (deployment_id,),
        ):
            diagnostics = (
                from_data(Diagnostics, json.loads(row["diagnostics"]))
                if row["diagnostics"]
                else None
            )
            events.setdefault(row["instance"], []).append(
                LifecycleEventInfo(
                    row["event"], row["status"], row["start_time"], row["end_time"], diagnostics
                )
            )
        return tuple(
            InstanceInfo(
                name=row["instance"],
                batch=row["batch"],
                status=row["status"],
                start_time=row["start_time"],
                end_time=row["end_time"],
                host=row["host"],
                events=tuple(events.get(row["instance"], ())),
            )
            for row in self.db.execute(
                "SELECT * FROM deployment_instances WHERE deployment_id=? ORDER BY position",
                (deployment_id,),
            )
        )

    def list_deployments(
        self,
        application: str | None = None,
        group: str | None = None,
        statuses: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[DeploymentInfo]:
        """Newest first, without per-instance detail."""
        where, args = [], []
        if application:
            where.append("application=?")
            args.append(application)
        if group:
            where.append("deployment_group=?")
            args.append(group)
        statuses = list(statuses)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        sql = "SELECT * FROM deployments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY create_time DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [
            _deployment_from_row(row, (), self._interrupted_at(row))
            for row in self.db.execute(sql, args)
        ]

    def instance_counts(self, deployment_id: str) -> dict[str, int]:
        return {
            row[0]: row[1]
            for row in self.db.execute(
                "SELECT status, COUNT(*) FROM deployment_instances WHERE deployment_id=? "
                "GROUP BY status",
                (deployment_id,),
            )
        }

    def active_deployment(self, application: str, group: str) -> str | None:
        row = self.db.execute(
            "SELECT deployment_id FROM active_deployments "
            "WHERE application=? AND deployment_group=?",
            (application, group),
        ).fetchone()
        return row[0] if row else None

    def last_successful_revision(self, application: str, group: str) -> RevisionRef | None:
        row = self.db.execute(
            "SELECT revision FROM deployments WHERE application=? AND deployment_group=? "
            "AND status=? ORDER BY complete_time DESC LIMIT 1",
            (application, group, SUCCEEDED),
        ).fetchone()
        return from_data(RevisionRef, json.loads(row[0])) if row else None

    def instance_states(self, application: str, group: str) -> dict[str, InstanceState]:
        return {
            row["instance"]: InstanceState(
                row["instance"], row["revision_sha256"], row["last_status"], row["deployment_id"]
            )
            for row in self.db.execute(
                "SELECT * FROM instance_state WHERE application=? AND deployment_group=?",
                (application, group),
            )
        }

    def journal(
        self, deployment_id: str | None = None, after: int = 0, limit: int = 10_000
    ) -> list[ev.JournalEntry]:
        if deployment_id is None:
            rows = self.db.execute(
                "SELECT * FROM journal WHERE seq>? ORDER BY seq LIMIT ?", (after, limit)
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM journal WHERE deployment_id=? AND seq>? ORDER BY seq LIMIT ?",
                (deployment_id, after, limit),
            )
        return _entries(rows)

    def journal_of(self, cursors: Mapping[str, int], limit: int = 10_000) -> list[ev.JournalEntry]:
        """The entries of a few deployments, each after its own position, merged in order:
        one index range per deployment, so other deployments' history costs nothing."""
        found: list[ev.JournalEntry] = []
        upto: int | None = None  # a deployment read only in part: nothing past its last entry
        for deployment_id, after in cursors.items():
            entries = self.journal(deployment_id, after=after, limit=limit)
            found += entries
            if len(entries) == limit:
                upto = min(entries[-1].seq, upto or entries[-1].seq)
        found.sort(key=lambda entry: entry.seq)
        return found if upto is None else [entry for entry in found if entry.seq <= upto]

    def stop_requests(self, deployment_id: str, after: int = 0) -> list[ev.JournalEntry]:
        """StopRequested entries of one deployment after `after` (cheap to poll)."""
        return self.journal_of_kind(deployment_id, ev.StopRequested.kind, after)

    def journal_of_kind(
        self, deployment_id: str, kind: str, after: int = 0
    ) -> list[ev.JournalEntry]:
        """One kind of a deployment's journal entries after `after`, in order."""
        rows = self.db.execute(
            "SELECT * FROM journal WHERE deployment_id=? AND kind=? AND seq>? ORDER BY seq",
            (deployment_id, kind, after),
        )
        return _entries(rows)

    def last_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM journal").fetchone()
        return int(row[0] or 0)

    def engine_alive(self, deployment_id: str) -> bool:
        """Whether the engine process that runs (or ran) the deployment is still alive."""
        row = self.db.execute(
            "SELECT engine_pid FROM deployments WHERE id=?", (deployment_id,)
        ).fetchone()
        return row is not None and pid_alive(row["engine_pid"])

    def orphans(self, now: float | None = None) -> list[DeploymentInfo]:
        """Unfinished deployments whose engine process is gone (killed, crashed, rebooted)."""
        marks = ",".join("?" * len(TERMINAL_STATUSES))
        found = []
        for row in self.db.execute(
            f"SELECT * FROM deployments WHERE status NOT IN ({marks})", tuple(TERMINAL_STATUSES)
        ):
            interrupted_at = self._interrupted_at(row, now)
            if interrupted_at is not None:
                found.append(_deployment_from_row(row, (), interrupted_at))
        return found

    def _interrupted_at(self, row: sqlite3.Row, now: float | None = None) -> float | None:
        """For an unfinished deployment whose engine process is gone: the time of its last
        journal entry (when its engine was last heard from). None otherwise."""
        if row["status"] in TERMINAL_STATUSES or pid_alive(row["engine_pid"]):
            return None
        now = time.time() if now is None else now
        if row["engine_pid"] is None and now - row["create_time"] < ORPHAN_GRACE_SECONDS:
            return None  # its runner is still starting
        return self.last_event_time(row["id"]) or float(row["create_time"])

    def last_event_time(self, deployment_id: str) -> float | None:
        """The time of the deployment's last journal entry."""
        row = self.db.execute(
            "SELECT MAX(time) FROM journal WHERE deployment_id=?", (deployment_id,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def list_revisions(self, application: str | None = None) -> list[RegisteredRevision]:
        sql, args = "SELECT * FROM revisions", []
        if application:
            sql += " WHERE application=?"
            args.append(application)
        sql += " ORDER BY register_time DESC"
        return [
            RegisteredRevision(
                row["application"],
                RevisionRef(row["sha256"], row["location"], row["bundle_type"]),
                row["description"],
                row["register_time"],
                row["first_used_time"],
                row["last_used_time"],
            )
            for row in self.db.execute(sql, args)
        ]

    def find_revision(self, application: str, sha_prefix: str) -> list[RegisteredRevision]:
        return [
            r for r in self.list_revisions(application) if r.revision.sha256.startswith(sha_prefix)
        ]


class _transaction:
    def __init__(self, db: _Database, began: bool = False) -> None:
        self.db = db
        self.began = began

    def __enter__(self) -> None:
        if not self.began:
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _entries(rows: Iterable[sqlite3.Row]) -> list[ev.JournalEntry]:
    """Journal rows decoded into their events."""
    return [
        ev.JournalEntry(
            row["seq"], ev.decode(row["kind"], row["deployment_id"], row["time"], row["payload"])
        )
        for row in rows
    ]


def _deployment_from_row(
    row: sqlite3.Row, instances: tuple[InstanceInfo, ...], interrupted_at: float | None = None
) -> DeploymentInfo:
    options = from_data(DeploymentOptions, json.loads(row["options"]))
    if not isinstance(options.auto_rollback, AutoRollback):
        options = DeploymentOptions(auto_rollback=AutoRollback())
    return DeploymentInfo(
        id=row["id"],
        application=row["application"],
        deployment_group=row["deployment_group"],
        config_name=row["config_name"],
        status=row["status"],
        revision=from_data(RevisionRef, json.loads(row["revision"])),
        creator=row["creator"],
        description=row["description"],
        previous_revision=(
            from_data(RevisionRef, json.loads(row["previous_revision"]))
            if row["previous_revision"]
            else None
        ),
        error_code=row["error_code"],
        error_message=row["error_message"],
        create_time=row["create_time"],
        start_time=row["start_time"],
        complete_time=row["complete_time"],
        options=options,
        rollback=RollbackInfo(
            row["rollback_deployment_id"],
            row["rollback_triggering_deployment_id"],
            row["rollback_message"],
        ),
        instances=instances,
        interrupted_at=interrupted_at,
        compute_platform=ComputePlatform(row["compute_platform"]),
        deployment_style=DeploymentStyle(
            DeploymentType(row["deployment_type"]), DeploymentOption(row["deployment_option"])
        ),
    )
