"""The dashboard: groups and their instances (what each runs, its health), the deployment
history and the registered revisions. Tables are keyed and updated in place; what they show is
read from the engine in its reading thread and drawn when the `Read` message comes back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.api import Engine, InstanceState, RegisteredRevision, Workspace
from engine.model import ComputePlatform, DeploymentInfo, RevisionRef, Status
from tui.actions import DASHBOARD, bindings
from tui.messages import FleetChange, Navigator, SaysWorkerFailures
from tui.render.glyphs import duration, revision_label, short_time, status
from tui.screens.safe import drawable
from tui.widgets.footer import KeysFooter
from tui.widgets.host_status import HostLineReader
from tui.widgets.keyed_table import KeyedTable

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class DashboardData:
    """One read of what the dashboard shows; `group` is the group whose instances it holds."""

    deployments: list[DeploymentInfo]
    revisions: list[RegisteredRevision]
    group: tuple[str, str] | None
    states: dict[str, InstanceState]
    gateway: str | None = None  # the running function gateway's URL (Lambda groups)


def read_dashboard(engine: Engine, group: tuple[str, str] | None) -> DashboardData:
    """The dashboard's reads, made in the engine's reading thread."""
    return DashboardData(
        engine.list_deployments(limit=HISTORY_LIMIT),
        engine.list_revisions(),
        group,
        engine.instance_states(*group) if group else {},
        engine.function_gateway_url() if group and _platform(engine, group) == "Lambda" else None,
    )


def _platform(engine: Engine, group: tuple[str, str]) -> str:
    application = engine.workspace.applications.get(group[0])
    return application.compute_platform if application else ComputePlatform.SERVER


class DashboardScreen(SaysWorkerFailures, Screen[None]):
    BINDINGS = bindings(DASHBOARD)

    @dataclass
    class Read(Message):
        """The engine was read: draw it."""

        data: DashboardData

    def __init__(self, engine: Engine, now: Callable[[], float], navigator: Navigator) -> None:
        super().__init__()
        self.navigator = navigator
        self.engine = engine  # the facade: the dashboard only reads through it
        self.clock_now = now
        self.watch_status = ""  # what the folder watch says, if one runs (the App says so)
        self.selected_group: tuple[str, str] | None = next(
            (
                (a, g)
                for a, application in engine.workspace.applications.items()
                for g in application.deployment_groups
            ),
            None,
        )
        self.data: DashboardData | None = None  # the last read drawn (None until the first)
        self._reading = False  # a read runs: another refresh asks for one more after it
        self._read_again = False
        self._stale = False  # changes came while hidden
        self._undrawn = 0  # reads posted, not drawn yet
        # made here, not found by query: they exist before compose and after dismiss
        self.title_text = Static(id="title")
        self.groups = KeyedTable(
            [("group", 14), ("config", 13), ("size", 4), ("last deployment", 24)], id="groups"
        )
        self.instances = KeyedTable(
            [("instance", 12), ("health", 12), ("revision", 24), ("host", None)], id="instances"
        )
        self.history = KeyedTable(
            [
                ("id", 12),
                ("status", 13),
                ("group", 10),
                ("revision", 32),
                ("config", 12),
                ("creator", 20),
                ("started", 14),
                ("took", 7),
            ],
            id="history",
        )
        self.revisions = KeyedTable(
            [("revision", 13), ("application", 11), ("location", 44), ("description", None)],
            id="revisions",
        )
        self.watch_text = Static(id="watch-status")
        # the selected group's balancer or service host, read every few seconds
        self.host_text = Static(id="group-host")
        self.host_text.styles.height = 1
        self.host_text.styles.padding = (0, 1)
        self.host_text.styles.text_wrap = "nowrap"
        self.host_text.styles.text_overflow = "ellipsis"
        self.host_text.display = False
        self.host_reader = HostLineReader(self, self._host_read)
        self.top = Horizontal(id="top")
        self.groups.border_title = "deployment groups"
        self.instances.border_title = "instances"
        self.history.border_title = "deployment history (enter: open, p: replay)"
        self.revisions.border_title = "registered revisions"

    @property
    def loaded(self) -> bool:
        """Whether it shows the engine's state as of the last change it was told of (the
        reads run in a thread)."""
        return self.data is not None and not (self._reading or self._undrawn or self._stale)

    def compose(self) -> ComposeResult:
        yield self.title_text
        with self.top:
            yield self.groups
            yield self.instances
        yield self.host_text
        yield self.history
        yield self.revisions
        yield self.watch_text
        yield KeysFooter()

    def on_resize(self, event: events.Resize) -> None:
        self._share_space()

    def _share_space(self) -> None:
        """Panels get the rows their content needs, the history first: each starts at its
        least, the history grows to its rows, the other two share what is left a row at a
        time, and any rows still free go to the history."""
        if not drawable(self):
            return
        chrome = 3  # a table's border and column labels
        top_rows = max(self.groups.row_count, self.instances.row_count)
        panels = [  # (widget, least, wanted), in the order they grow
            (self.history, chrome + 3, chrome + self.history.row_count),
            (self.top, chrome + 1, chrome + top_rows),
            (self.revisions, chrome + 1, chrome + self.revisions.row_count),
        ]
        free = self.size.height - 2  # title, footer
        free -= sum(1 for line in (self.watch_text, self.host_text) if line.display)
        heights = {id(w): min(least, wanted) for w, least, wanted in panels}
        free -= sum(heights.values())
        history, *others = panels
        grow = max(0, min(free, history[2] - heights[id(self.history)]))
        heights[id(self.history)] += grow
        free -= grow
        while free > 0:  # the others share what is left a row at a time
            hungry = [w for w, _, wanted in others if heights[id(w)] < wanted]
            if not hungry:
                break
            for widget in hungry[:free]:
                heights[id(widget)] += 1
                free -= 1
        heights[id(self.history)] += max(0, free)
        for widget, _, _ in panels:
            widget.styles.height = max(1, heights[id(widget)])

    def on_mount(self) -> None:
        self.refresh_data()
        self._follow_host()
        self.history.focus()
        self.navigator.fleet_changed.subscribe(self, self._fleet_changed, immediate=True)
        self.navigator.watch_changed.subscribe(self, self._watch_changed, immediate=True)

    def _fleet_changed(self, change: FleetChange) -> None:
        if not change.dashboard:
            return
        if self.is_current:
            self.refresh_data()
        else:
            self._stale = True  # hidden under another screen: read once it shows again

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.refresh_data()

    def _watch_changed(self, text: str) -> None:
        self.watch_status = text
        if drawable(self):
            self.watch_text.update(text)
            self.watch_text.display = bool(text)
            self._share_space()

    def refresh_data(self) -> None:
        """Read the engine again (in its thread) and draw what it says; refreshes asked for
        while a read runs become one more read after it."""
        if not drawable(self):
            return  # not composed yet (on_mount draws) or already gone
        self._read_again = True
        if not self._reading:
            self._reading = True
            self._read()

    @work(group="dashboard", exit_on_error=False, description="Reading the dashboard")
    async def _read(self) -> None:
        try:
            while self._read_again:
                self._read_again = False
                read = partial(read_dashboard, group=self.selected_group)
                data = await self.engine.read_in_thread(read)
                self._undrawn += 1
                self.post_message(self.Read(data))
        finally:
            self._reading = False

    @on(Read)
    def _draw(self, message: Read) -> None:
        self._undrawn -= 1
        if not drawable(self):
            return
        self.data = data = message.data
        workspace = self.engine.workspace
        deployments = data.deployments
        last_by_group: dict[tuple[str, str], DeploymentInfo] = {}
        for d in deployments:
            last_by_group.setdefault((d.application, d.deployment_group), d)
        with self.app.batch_update():
            self.title_text.update(
                Text.assemble(
                    ("deploydeck  ", "bold"),
                    str(workspace.path),
                    "  ·  ",
                    f"{len(workspace.instances)} instances  ·  {len(deployments)} deployments",
                )
            )
            groups = {}
            for app_name, application in workspace.applications.items():
                for group_name in application.deployment_groups:
                    last = last_by_group.get((app_name, group_name))
                    count = (
                        len(workspace.group_instances(app_name, group_name))
                        if application.compute_platform == ComputePlatform.SERVER
                        else 0
                    )
                    groups[f"{app_name}/{group_name}"] = (
                        f"{app_name}/{group_name}",
                        _config_name(workspace, app_name, group_name).replace(
                            "CodeDeployDefault.", ""
                        ),
                        str(count),
                        Text.assemble(f"{last.id} ", status(last.status))
                        if last
                        else Text("never", style="dim"),
                    )
            self.groups.sync(groups)
            self._instances(data)
            history = {
                d.id: (
                    d.id,
                    status(d.status),
                    d.deployment_group,
                    f"{d.revision.short()} {revision_label(d.revision)}",
                    d.config_name.replace("CodeDeployDefault.", ""),
                    d.creator
                    + (
                        f" ← {d.rollback.rollback_triggering_deployment_id}"
                        if d.rollback.rollback_triggering_deployment_id
                        else ""
                    ),
                    short_time(d.create_time),
                    _took(d, self.clock_now()),
                )
                for d in deployments
            }
            self.history.sync(history)
            revisions = {
                f"{r.application}:{r.revision.sha256}": (
                    r.revision.short(),
                    r.application,
                    r.revision.location,
                    r.description or "",
                )
                for r in data.revisions
            }
            self.revisions.sync(revisions)
            self.watch_text.update(self.watch_status)
            self.watch_text.display = bool(self.watch_status)
            self._share_space()

    def _instances(self, data: DashboardData) -> None:
        if data.group is None:
            return
        app_name, group_name = data.group
        states = data.states
        revisions = {
            r.revision.sha256: r.revision for r in data.revisions if r.application == app_name
        }
        rows = {}
        if _platform(self.engine, data.group) != ComputePlatform.SERVER:
            rows = self._targets(data, revisions)
        for instance in self.engine.workspace.group_instances(app_name, group_name):
            state = states.get(instance.name)
            health = (
                Status.UNKNOWN
                if state is None or state.last_status is None
                else (Status.HEALTHY if state.last_status == Status.SUCCEEDED else Status.UNHEALTHY)
            )
            sha = state.revision_sha256 if state else None
            revision = "none"
            if sha:
                ref = revisions.get(sha)
                revision = f"{sha[:12]} {revision_label(ref)}"
            if instance.ssh is not None:
                ssh = instance.ssh
                host = f"ssh:{ssh.user + '@' if ssh.user else ''}{ssh.host}:{ssh.port}"
            else:
                host = f"local:{_short_path(str(instance.root))}"
            rows[instance.name] = (instance.name, status(health), revision, host)
        table = self.instances
        table.border_title = f"instances of {app_name}/{group_name}"
        if _platform(self.engine, data.group) == ComputePlatform.LAMBDA:  # where to call it
            gateway = data.gateway or "none running"
            table.border_title = f"{app_name}/{group_name} · function gateway {gateway}"
        elif _platform(self.engine, data.group) == ComputePlatform.ECS:
            port = (self.engine.workspace.group(app_name, group_name).target or {}).get(
                "production_port"
            )
            table.border_title = f"{app_name}/{group_name} · production listener :{port}"
        table.sync(rows)
        self._share_space()

    def _targets(
        self, data: DashboardData, revisions: dict[str, RevisionRef]
    ) -> dict[str, tuple[object, ...]]:
        """A Lambda or ECS group's target (its function or service) as its last deployment
        left it, with where to reach it: the function gateway's URL, the service's listener."""
        assert data.group is not None
        group = self.engine.workspace.group(*data.group)
        target = group.target or {}
        if _platform(self.engine, data.group) == ComputePlatform.LAMBDA:
            where = (
                f"aws lambda invoke --endpoint-url {data.gateway}"
                if data.gateway
                else "no function gateway runs (the console's demo starts one)"
            )
        else:
            port = target.get("production_port")
            where = f"http://127.0.0.1:{port}/ (while a deployment runs)" if port else ""
        rows: dict[str, tuple[object, ...]] = {}
        for name, state in data.states.items():
            ok = state.last_status == Status.SUCCEEDED
            health = Status.HEALTHY if ok else Status.UNHEALTHY
            sha = state.revision_sha256 or ""
            revision = f"{sha[:12]} {revision_label(revisions.get(sha))}" if sha else "none"
            rows[name] = (name, status(health), revision, where)
        if not rows:
            rows[""] = ("(none yet)", Text("never deployed", style="dim"), "", where)
        return rows

    @on(DataTable.RowHighlighted, "#groups")
    def _group_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            group = tuple(str(event.row_key.value).split("/", 1))
            if group != self.selected_group:
                self.selected_group = group  # type: ignore[assignment]
                self.refresh_data()
                self._follow_host()

    def _follow_host(self) -> None:
        if self.selected_group is not None:
            self.host_reader.follow(self.engine, *self.selected_group)

    def _host_read(self, line: Text | None) -> None:
        if not drawable(self):
            return
        if line is not None:  # of the group the instances panel shows
            self.host_text.update(line)
        if self.host_text.display != (line is not None):
            self.host_text.display = line is not None
            self._share_space()

    @on(DataTable.RowSelected, "#history")
    def _history_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key is not None and event.row_key.value and self.is_active:
            self.navigator.open_deployment(str(event.row_key.value))

    def action_open_selected(self) -> None:
        key = self.history.selected_key
        if key and self.is_active:
            self.navigator.open_deployment(key)

    def action_replay(self) -> None:
        key = self.history.selected_key
        if key and self.is_active:
            self.navigator.open_deployment(key, replay=True)
        else:
            self.notify("Select a deployment in the history first", severity="warning")

    def action_new_deployment(self) -> None:
        self.navigator.new_deployment(self.selected_group)

    def action_watch_folder(self) -> None:
        self.navigator.watch_folder()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay":
            return True if self.history.row_count else None
        return True


def _config_name(workspace: Workspace, application: str, name: str) -> str:
    """The config a group deploys with unless asked otherwise (its platform's default when
    it names none)."""
    group = workspace.group(application, name)
    try:
        return workspace.resolve_config(None, group).name
    except Exception:  # a config the workspace check lets through but cannot resolve
        return group.deployment_config or "?"


def _took(deployment: DeploymentInfo, now: float) -> str:
    """How long it ran (or runs) on its own clock, marked `x20` when time-scaled: a scaled
    run's clock runs that many times faster from its creation (on the wall clock)."""
    start, scale = deployment.start_time, deployment.options.time_scale
    if not start:
        return ""
    if deployment.complete_time:
        took = deployment.complete_time - start
    else:
        took = (now - deployment.create_time) * scale - (start - deployment.create_time)
    took = max(0.0, took)
    if scale == 1.0:
        return duration(took)
    # the column is narrow: whole seconds or minutes, then the scale
    short = f"{took:.0f}s" if took < 60 else f"{int(took // 60)}m"
    return f"{short} x{scale:g}"


def _short_path(path: str, width: int = 20) -> str:
    """A folder as a person reads it in a narrow column: ~ for the home folder, and the
    distinctive end (the instance's own folder) kept when it must be cut."""
    home = str(Path.home())
    if path == home or path.startswith(home + "/"):
        path = "~" + path[len(home) :]
    return path if len(path) <= width else "…" + path[-(width - 1) :]
