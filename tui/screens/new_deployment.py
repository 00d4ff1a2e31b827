"""A new deployment: revision (registered, or a path validated on the spot), group, config and
options, with the plan shown before the confirmation.

The registered revisions are read, and the preview (a scan and hash of the revision, then the
plan) worked out, in threads: the form keeps answering keys while a large revision is read, and
only the newest preview is shown.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group as RichGroup
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerCancelled

from engine.api import (
    CreateDeploymentRequest,
    Engine,
    EngineError,
    PlanPreview,
    RegisteredRevision,
    ShiftPreview,
)
from engine.model import BlueInstanceAction, ComputePlatform, DeploymentType, GreenFleetAction
from tui.messages import SaysWorkerFailures
from tui.render.glyphs import duration, revision_label
from tui.render.plain import time_scaled
from tui.screens.confirm import ConfirmScreen
from tui.screens.safe import drawable, leave
from tui.widgets.select import SafeSelect
from tui.widgets.tick_box import TickBox

PATH = "__path__"
DEFAULT = "__default__"
LOADING = "__loading__"  # the revision choice until the registered revisions are read
PATH_CHOICE = ("a folder or archive path…", PATH)


def plan_text(preview: PlanPreview, label: str) -> Text:
    plan = preview.plan
    group = preview.deployment_group
    text = Text()
    text.append(
        f"{group.application}/{group.name} · {plan.config.name} · "
        f"revision {preview.revision.short()} {label}\n",
        style="bold",
    )
    if plan.start_problem is not None:
        text.append(
            f"✖ Cannot start: {plan.start_problem.error_code}: {plan.start_problem.message}\n",
            style="red",
        )
        return text
    if is_blue_green(preview):
        blue_green_steps(text, preview)
    else:
        text.append(
            f"{len(plan.instances)} instance(s) · at least {plan.minimum} stay healthy · at "
            f"most {plan.max_concurrent} down at once · {plan.failures_allowed()}\n"
        )
        for index, batch in enumerate(plan.batches, 1):
            text.append(f"  batch {index} ({len(batch)}): ", style="bold")
            text.append(", ".join(batch) + "\n")
        for rule in plan.failure_rules():
            text.append(f"  • {rule}\n", style="dim")
    rollback = preview.options.auto_rollback
    if rollback.enabled:
        target = preview.previous_revision.short() if preview.previous_revision else None
        text.append(
            f"  • On {', '.join(rollback.events)}: roll back to "
            + (f"revision {target}" if target else "nothing (no earlier successful revision)")
            + "\n"
        )
    else:
        text.append("  • Automatic rollback is off\n")
    return text


def shift_text(preview: ShiftPreview, label: str) -> Text:
    """A Lambda or ECS deployment's plan: the weight schedule, in the run's time and (when
    scaled) in real time, and what a stop, a failure or an alarm does to traffic."""
    group = preview.deployment_group
    scale = preview.options.time_scale
    text = Text()
    text.append(
        f"{group.application}/{group.name} · {preview.config_name} · "
        f"revision {preview.revision.short()} {label}\n",
        style="bold",
    )
    what = (
        "the alias's calls move"
        if group.compute_platform == ComputePlatform.LAMBDA
        else "the production listener's traffic moves"
    )
    text.append(f"No batches: {what} to the target by weight{time_scaled(scale)}\n")
    for at, percent in preview.steps:
        real = f" ({duration(at / scale) or '0.0s'} real)" if scale != 1.0 and at else ""
        when = f"after {duration(at)}{real}" if at else "at once"
        text.append(f"  {percent:3d}% on the target {when}\n")
    text.append(
        "  • A failed hook, a stop or an alarm puts all traffic back on the original at once\n",
        style="dim",
    )
    text.append(
        "  • While it shifts: h hold, r resume, > skip the wait, P promote to 100%\n", style="dim"
    )
    return text


def is_blue_green(preview: PlanPreview) -> bool:
    group = preview.deployment_group
    return (
        group.deployment_style.deployment_type == DeploymentType.BLUE_GREEN
        and group.compute_platform == ComputePlatform.SERVER
    )


def blue_green_steps(text: Text, preview: PlanPreview) -> None:
    """A Server blue/green deployment's steps, from its group's settings (the fleet is the
    group's at the start: its first instances, or the green of its last deployment)."""
    settings = preview.deployment_group.blue_green
    if settings is None:
        return
    size = len(preview.plan.instances)
    green = (
        "instances found by the green tag filters"
        if settings.green_fleet == GreenFleetAction.DISCOVER_EXISTING
        else "a copy of each blue instance, on its own port"
    )
    text.append(f"blue/green · blue: the group's {size} instance(s) · green: {green}\n")
    steps = ["install the revision on every green instance at once; green takes no traffic"]
    if settings.waits_ready:
        steps.append(
            f"wait in Ready up to {settings.ready_wait_minutes:g} min until C (or "
            f"continue-deployment), then {settings.ready_action}"
        )
    per_batch = max(1, preview.plan.max_concurrent)
    steps.append(
        f"move traffic {per_batch} instance(s) at a time: AllowTraffic on green, then "
        "BlockTraffic on blue (alarms checked before each batch)"
    )
    if settings.blue_action == BlueInstanceAction.TERMINATE:
        wait = settings.termination_wait_minutes
        steps.append(
            (f"wait {wait:g} min (C ends it), then " if wait > 0 else "then ")
            + "TERMINATE blue: ApplicationStop, out of the group, copies removed"
        )
    else:
        steps.append("KEEP_ALIVE: blue leaves the group and keeps running, out of service")
    for index, step in enumerate(steps, 1):
        text.append(f"  {index}. ", style="bold")
        text.append(step + "\n")
    text.append(
        "  • A stop leaves traffic on the fleet that has it; a rollback moves it back to blue "
        "while blue runs.\n",
        style="dim",
    )


class NewDeploymentScreen(SaysWorkerFailures, ModalScreen[CreateDeploymentRequest | None]):
    DEFAULT_CSS = """
    NewDeploymentScreen { align: center middle; }
    NewDeploymentScreen > Vertical {
        width: 110; max-width: 100%; height: 92%; max-height: 100%; border: thick $primary;
        background: $surface; padding: 0 1;
    }
    NewDeploymentScreen .row { height: auto; }
    NewDeploymentScreen Label { width: 12; }
    NewDeploymentScreen Select { width: 1fr; }
    NewDeploymentScreen #path { width: 1fr; }
    NewDeploymentScreen #check { height: auto; max-height: 8; }
    NewDeploymentScreen #plan { height: 1fr; min-height: 4; border: round $primary-darken-1; }
    NewDeploymentScreen #buttons { height: auto; align-horizontal: right; }
    NewDeploymentScreen Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without deploying"),
        # priority: an Input would take ctrl+d as delete-right
        Binding(
            "ctrl+d",
            "deploy",
            "Deploy…",
            tooltip="Review and confirm the deployment",
            priority=True,
        ),
    ]

    def __init__(self, engine: Engine, group: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.engine = engine  # the facade: the form reads and previews through it
        self.initial_group = group
        self.preview: PlanPreview | ShiftPreview | None = None
        self.previewed: CreateDeploymentRequest | None = None  # what `preview` is the plan of
        self._timer: Timer | None = None
        self._preview_worker: Worker[PlanPreview | ShiftPreview | None] | None = None
        self._registered: list[RegisteredRevision] = []  # read once, shown per application
        self.revision_choice = SafeSelect(
            [("reading the registered revisions…", LOADING), PATH_CHOICE],
            value=LOADING,
            allow_blank=False,
            compact=True,
            id="revision",
        )
        self.loaded = False  # the registered revisions (read in a thread) are among the choices

    def compose(self) -> ComposeResult:
        engine = self.engine
        workspace = engine.workspace
        groups = [
            (f"{a}/{g}", f"{a}/{g}")
            for a, application in workspace.applications.items()
            for g in application.deployment_groups
        ]
        wanted = f"{self.initial_group[0]}/{self.initial_group[1]}" if self.initial_group else ""
        initial = wanted if wanted in dict(groups) else (groups[0][1] if groups else Select.NULL)
        configs = self._configs(initial if isinstance(initial, str) else "")
        with Vertical():
            yield Static(
                Text.assemble(
                    ("New deployment", "bold"),
                    (
                        "   tab: next field · enter: open a list · ctrl+d: deploy · esc: cancel",
                        "dim",
                    ),
                )
            )
            with Horizontal(classes="row"):
                yield Label("revision")
                yield self.revision_choice
            with Horizontal(classes="row", id="path-row"):
                yield Label("path")
                yield Input(
                    placeholder="path to a revision folder or tar/tgz/zip", id="path", compact=True
                )
            yield Static(id="check")
            with Horizontal(classes="row"):
                yield Label("group")
                yield SafeSelect(groups, value=initial, allow_blank=False, compact=True, id="group")
            with Horizontal(classes="row"):
                yield Label("config")
                yield SafeSelect(
                    configs, value=DEFAULT, allow_blank=False, compact=True, id="config"
                )
            with Horizontal(classes="row server-only"):
                yield Label("files exist")
                yield SafeSelect(
                    [
                        ("(the group's)", DEFAULT),
                        ("DISALLOW", "DISALLOW"),
                        ("OVERWRITE", "OVERWRITE"),
                        ("RETAIN", "RETAIN"),
                    ],
                    value=DEFAULT,
                    allow_blank=False,
                    compact=True,
                    id="feb",
                )
            with Horizontal(classes="row server-only"):
                yield TickBox("ignore ApplicationStop failures", id="ignore-stop", compact=True)
                yield TickBox("outdated instances only", id="outdated", compact=True)
            yield VerticalScroll(Static(id="plan-text"), id="plan")
            with Horizontal(id="buttons"):
                yield Button("Deploy…", id="deploy", variant="warning")
                yield Button("Cancel", id="cancel")

    def _platform(self, group: str) -> ComputePlatform:
        application = self.engine.workspace.applications.get(group.split("/", 1)[0])
        return application.compute_platform if application else ComputePlatform.SERVER

    def _configs(self, group: str) -> list[tuple[str, str]]:
        """The config choices for `group`: those of its compute platform."""
        names = self.engine.config_names(self._platform(group))
        return [("(the group's)", DEFAULT)] + [(name, name) for name in names]

    def _group(self) -> str:
        if not drawable(self):
            return ""
        value = self.query_one("#group", Select).value
        return value if isinstance(value, str) else ""

    def _revision_options(self) -> list[tuple[str, str]]:
        """The registered revisions of the chosen group's application, newest first."""
        application = self._group().split("/", 1)[0]
        return [
            (
                f"{r.revision.short()} {revision_label(r.revision)}  {r.description}",
                r.revision.sha256,
            )
            for r in reversed(self._registered)
            if r.application == application
        ]

    def _group_changed(self) -> None:
        """A new group: its application's revisions and its platform's configs are offered,
        and the Server-only options shown only for a Server group."""
        group = self._group()
        server = self._platform(group) == ComputePlatform.SERVER
        for row in self.query(".server-only"):
            row.display = server
        config = self.query_one("#config", Select)
        with config.prevent(Select.Changed):
            chosen = config.value
            options = self._configs(group)
            config.set_options(options)
            config.value = chosen if chosen in {v for _, v in options} else DEFAULT
        if not self.loaded:
            return
        choice = self.revision_choice
        with choice.prevent(Select.Changed):
            chosen = choice.value
            revisions = self._revision_options()
            choice.set_options([*revisions, PATH_CHOICE])
            values = {v for _, v in revisions} | {PATH}
            choice.value = chosen if chosen in values else (revisions[0][1] if revisions else PATH)
        self._update_path_row()

    def on_mount(self) -> None:
        self.query_one("#plan").border_title = "plan"
        self._group_changed()
        self._update_path_row()
        self.schedule_preview()
        self._read_revisions()

    @work(group="revisions", exit_on_error=False, description="Reading the registered revisions")
    async def _read_revisions(self) -> None:
        registered = await self.engine.read_in_thread(lambda engine: engine.list_revisions())
        if not drawable(self):
            return
        self._registered = registered
        revisions = self._revision_options()
        choice = self.revision_choice
        chosen = choice.value  # a path chosen meanwhile stays chosen, and its preview stands
        with choice.prevent(Select.Changed):
            choice.set_options([*revisions, PATH_CHOICE])
            if chosen == LOADING:
                choice.value = revisions[0][1] if revisions else PATH
            else:
                choice.value = chosen
        self.loaded = True
        if chosen == LOADING:
            self._update_path_row()
            self.schedule_preview()

    def _update_path_row(self) -> None:
        if not drawable(self):
            return
        self.query_one("#path-row").display = self.query_one("#revision", Select).value == PATH

    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: object) -> None:
        if isinstance(event, Select.Changed) and event.select.id == "group":
            self._group_changed()
        self._update_path_row()
        self.schedule_preview()

    @on(Input.Changed, "#path")
    def _path_changed(self) -> None:
        self.schedule_preview()

    def schedule_preview(self) -> None:
        if not drawable(self):
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.update_preview)

    def request(self) -> CreateDeploymentRequest | None:
        if not drawable(self):
            return None  # the form is not composed yet, or gone
        group = self.query_one("#group", Select).value
        if not isinstance(group, str):
            return None
        app_name, group_name = group.split("/", 1)
        revision = self.query_one("#revision", Select).value
        config = self.query_one("#config", Select).value
        feb = self.query_one("#feb", Select).value
        path = self.query_one("#path", Input).value.strip()
        if (revision == PATH and not path) or revision == LOADING:
            return None
        return CreateDeploymentRequest(
            application=app_name,
            deployment_group=group_name,
            revision_path=Path(path).expanduser() if revision == PATH else None,
            registered_sha256=None if revision == PATH else str(revision),
            config_name=None if config == DEFAULT else str(config),
            file_exists_behavior=None if feb == DEFAULT else str(feb),
            ignore_application_stop_failures=self.query_one("#ignore-stop", Checkbox).value or None,
            update_outdated_instances_only=self.query_one("#outdated", Checkbox).value,
        )

    @property
    def previewing(self) -> bool:
        """Whether a preview is being worked out (in a thread) now."""
        worker = self._preview_worker
        return worker is not None and not worker.is_finished

    def update_preview(self) -> Worker[PlanPreview | ShiftPreview | None] | None:
        if not drawable(self):
            return None
        self._preview_worker = self._preview()
        return self._preview_worker

    @work(exclusive=True, group="preview", exit_on_error=False, description="The plan preview")
    async def _preview(self) -> PlanPreview | ShiftPreview | None:
        """Check the revision and plan, in a thread; a newer preview cancels this one (its
        thread finishes unseen)."""
        if not drawable(self):
            return None
        check = self.query_one("#check", Static)
        plan = self.query_one("#plan-text", Static)
        request = self.request()
        if request is None:
            self.preview = self.previewed = None
            waiting = (
                "Reading the registered revisions…"
                if self.revision_choice.value == LOADING
                else "Type the path of a revision folder or archive"
            )
            check.update(Text(waiting, style="dim"))
            plan.update("")
            return None
        check.update(Text("◌ checking the revision…", style="dim"))
        shifts = self._platform(self._group()) != ComputePlatform.SERVER
        preview: PlanPreview | ShiftPreview
        try:
            if shifts:
                preview = await self.engine.preview_shift_in_thread(request)
            else:
                preview = await self.engine.preview_in_thread(request)
        except EngineError as error:
            self.preview = self.previewed = None
            lines = [Text(f"✖ {error}", style="red")]
            lines += [
                Text(str(d), style="red" if d.severity == "error" else "yellow")
                for d in error.diagnostics
            ]
            check.update(RichGroup(*lines))
            plan.update("")
            return None
        if not drawable(self):
            return None
        self.preview, self.previewed = preview, request
        lines = [
            Text(
                f"✔ appspec valid ({preview.revision.bundle_type}, "
                f"sha256 {preview.revision.short()})",
                style="green",
            )
        ]
        lines += [Text(f"⚠ {d}", style="yellow") for d in preview.warnings]
        check.update(RichGroup(*lines))
        label = revision_label(preview.revision)
        if isinstance(preview, ShiftPreview):
            plan.update(shift_text(preview, label))
        else:
            plan.update(plan_text(preview, label))
        return preview

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        leave(self, None)

    @on(Button.Pressed, "#deploy")
    def action_deploy(self) -> None:
        if not self.is_active:
            return  # not composed yet, or a dialog is already open on it
        self._confirm()

    @work(exclusive=True, group="confirm", exit_on_error=False, description="The deploy question")
    async def _confirm(self) -> None:
        """Ask about the plan of what the form says now (worked out first if it changed)."""
        request = self.request()
        if request is None or request != self.previewed:
            worker = self.update_preview()
            try:
                await worker.wait() if worker is not None else None
            except WorkerCancelled:
                return  # the form changed meanwhile: the next ctrl+d asks about that
            if self.request() != request:
                return
        preview = self.preview
        if request is None or preview is None:
            self.notify(
                "Fix the revision first: the plan shows why it cannot deploy", severity="error"
            )
            return
        if isinstance(preview, ShiftPreview):
            scale = preview.options.time_scale
            body = (
                f"Deploy revision {preview.revision.short()} "
                f"{revision_label(preview.revision)} to "
                f"{request.application}/{request.deployment_group} with {preview.config_name}: "
                f"traffic moves to the target in {len(preview.steps)} step(s)"
                f"{time_scaled(scale)}."
            )
        elif preview.plan.start_problem is not None:
            self.notify(preview.plan.start_problem.message, severity="error")
            return
        else:
            body = self._plan_body(request, preview)

        def answered(yes: bool | None) -> None:
            if yes:
                leave(self, request)

        if self.is_active:
            self.app.push_screen(ConfirmScreen("Start this deployment?", body, "Deploy"), answered)

    def _plan_body(self, request: CreateDeploymentRequest, preview: PlanPreview) -> str:
        plan = preview.plan
        how = (
            f"blue/green: a green fleet of {len(plan.instances)} gets it, then traffic moves "
            f"{max(1, plan.max_concurrent)} instance(s) at a time with {plan.config.name}."
            if is_blue_green(preview)
            else f"{len(plan.instances)} instance(s) in {len(plan.batches)} batch(es) with "
            f"{plan.config.name}, at most {plan.max_concurrent} down at once."
        )
        return (
            f"Deploy revision {preview.revision.short()} "
            f"{revision_label(preview.revision)} to "
            f"{request.application}/{request.deployment_group}: {how}"
        )
