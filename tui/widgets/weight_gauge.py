"""The traffic gauge of a traffic-shifting deployment: the alias with each version's weight as
a bar (set weight solid, the gap to the measured actual weight shaded), the schedule's step and
the countdown to the next shift (in the deployment's time, and in real time when it is scaled),
the traffic hooks' states and the alarm lights. Drawn from the journal's fold alone.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from engine import events as ev
from engine.model import ComputePlatform, Status
from tui.render.glyphs import duration, short_status
from tui.render.plain import production_actual
from tui.render.state import DeploymentView
from tui.widgets.traffic_view import alarm_lights

TRAFFIC_HOOKS = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
ECS_TRAFFIC_HOOKS = ("AfterAllowTestTraffic", "AllowTraffic", "AfterAllowTraffic")
BAR_MIN, BAR_MAX = 10, 50


def shows_gauge(view: DeploymentView) -> bool:
    """A gauge is drawn for deployments that shift traffic by weight."""
    return (
        view.shifted is not None
        or view.task_sets is not None
        or view.info.compute_platform in (ComputePlatform.LAMBDA, ComputePlatform.ECS)
    )


def gauge_text(
    view: DeploymentView, run_now: float | None, width: int = 80, host: Text | None = None
) -> Text:
    """The gauge's lines for `width` columns; `run_now` is the time on the run's clock (for the
    countdown), None when unknown; `host` the line on an ECS service's host (None: not shown)."""
    lines = _service_lines(view, run_now, width) if _is_ecs(view) else []
    if not lines:
        lines = _alias_lines(view, run_now, width)
    if host is not None:
        line = host.copy()
        line.no_wrap, line.overflow = True, "ellipsis"
        lines.insert(1 if len(lines) > 1 or _is_ecs(view) else 0, line)
    function = next(iter(view.instances), "")
    hooks = _hooks(view, function, ECS_TRAFFIC_HOOKS if _is_ecs(view) else TRAFFIC_HOOKS)
    alarms = alarm_lights(view) if view.alarms else Text("alarms none", style="dim")
    if hooks.cell_len + 2 + alarms.cell_len <= width:
        lines.append(Text.assemble(hooks, "  ", alarms))
    else:
        lines.extend([hooks, alarms])
    return Text("\n").join(lines)


def _is_ecs(view: DeploymentView) -> bool:
    return view.task_sets is not None or view.info.compute_platform == ComputePlatform.ECS


def _alias_lines(view: DeploymentView, run_now: float | None, width: int) -> list[Text]:
    """A Lambda alias: a bar per version, set against actual weight, and the calls measured."""
    gauge, shift = view.gauge, view.shifted
    if shift is None:
        function = next(iter(view.instances), "")
        host = next((i.host for i in view.instances.values()), "")
        alias = host.removeprefix("lambda:") if host.startswith("lambda:") else ""
        name = f"{function}:{alias}" if alias else function
        if _is_ecs(view):  # its task sets are not up yet
            name = f"service {function}" if function else "service"
        return [Text.assemble((name, "bold"), ("  traffic not shifted yet", "dim"))]
    title = Text.assemble((f"{shift.function}:{shift.alias}", "bold"), "  ")
    title.append_text(_schedule(view, run_now))
    lines = [title]
    if gauge is not None and gauge.time < shift.time:
        gauge = None  # measured before the last shift (a stop's or alarm's, say): stale
    set_target = gauge.set_weight if gauge is not None else shift.weight
    actual = gauge.actual_weight if gauge is not None else None
    label = max(len(shift.original_version), len(shift.target_version)) + 1
    calls = ""
    if gauge is not None:  # how many calls the actual weight is measured over
        calls = f" ({gauge.calls} calls)" if gauge.calls else " (no calls in 10 s)"
    elif view.gauge is not None:
        calls = " (not measured since)"
    bar = max(BAR_MIN, min(BAR_MAX, width - label - 28 - len(calls)))
    rows = (
        (shift.original_version, 1.0 - set_target, None if actual is None else 1.0 - actual, ""),
        (shift.target_version, set_target, actual, calls),
    )
    for version, wanted, measured, note in rows:
        line = _bar_line(f"v{version}".ljust(label), wanted, measured, bar)
        lines.append(line.append(note, style="dim"))
    return lines


def _service_lines(view: DeploymentView, run_now: float | None, width: int) -> list[Text]:
    """An ECS service: a row per task set with its counts and its production weight as a bar,
    its test listener weight beside it."""
    service = view.task_sets
    if service is None:
        return []
    test = f"  test {service.test}" if service.test else ""
    title = Text.assemble((service.service, "bold"), f"  production {service.production}{test}")
    schedule = _schedule(view, run_now)
    if schedule.plain:
        if title.cell_len + 2 + schedule.cell_len > width:
            lines = [title, schedule]
        else:
            lines = [Text.assemble(title, "  ", schedule)]
    else:
        lines = [title]
    actual = production_actual(view.gauge, service)
    for task_set in service.task_sets:
        definition = task_set.task_definition.rsplit("/", 1)[-1]
        head = (
            f"{task_set.label:<5} {task_set.status:<8} {definition}"
            f" {task_set.running_count}/{task_set.desired_count} run"
            + (f" {task_set.pending_count} pend" if task_set.pending_count else "")
        )
        wanted = task_set.traffic_weight / 100
        measured = actual.get(task_set.target_group)
        shown = "  —  " if measured is None else f"{measured:5.0%}"
        tail = f" {wanted:4.0%} prod{shown} act {task_set.test_traffic_weight:4.0f}% test"
        bar = max(BAR_MIN // 2, min(BAR_MAX, width - len(head) - len(tail) - 2))
        row = Text(head + " ")
        row.append_text(_bar(wanted, measured, bar))
        row.append(tail)
        lines.append(row)
    if view.gauge is not None and actual:
        lines.append(Text(f"actual over the last {view.gauge.calls} requests", style="dim"))
    return lines


def _schedule(view: DeploymentView, run_now: float | None) -> Text:
    """`step 3 of 10 · next shift in 42s (time x60: 0.7s real)`, or held, done, stopped."""
    progress, gauge = view.shift, view.gauge
    scale = view.info.options.time_scale

    def wait(seconds: float) -> str:
        real = f" (time x{scale:g}: {duration(seconds / scale) or '0.0s'} real)"
        return (duration(seconds) or "0.0s") + (real if scale != 1.0 else "")

    if progress is not None:
        text = Text(f"step {progress.step} of {progress.steps}")
        if progress.state == ev.ShiftState.HELD:
            text.append(f" · HELD: next shift {wait(progress.remaining or 0.0)} after resume")
            text.stylize("bold yellow")
        elif progress.state == ev.ShiftState.SHIFTING and progress.next_at is not None:
            if view.ended is None:
                left = progress.remaining or 0.0
                if run_now is not None:
                    left = max(0.0, progress.next_at - run_now)
                text.append(f" · next shift in {wait(left)}")
        elif progress.state == ev.ShiftState.DONE:
            text.append(" · all traffic on the target", style="dim")
        else:
            text.append(f" · {progress.state}", style="dim")
        return text
    if gauge is None or not gauge.steps:
        return Text()
    text = Text(f"step {gauge.step} of {gauge.steps}")
    if gauge.next_shift_at is None:
        text.append(" · last step", style="dim")
    elif view.ended is None and run_now is not None:
        text.append(f" · next shift in {wait(max(0.0, gauge.next_shift_at - run_now))}")
    return text


def _bar_line(label: str, wanted: float, measured: float | None, width: int) -> Text:
    """`v2 ████▒▒·········  10% set   12% actual`: solid to the set weight, shaded to actual."""
    text = Text(label + " ")
    text.append_text(_bar(wanted, measured, width))
    shown = "  —  " if measured is None else f"{measured:5.0%}"
    text.append(f" {wanted:4.0%} set {shown} actual")
    return text


def _bar(wanted: float, measured: float | None, width: int) -> Text:
    """`████▒▒·········`: solid to the set weight, shaded from there to the actual weight."""
    solid = round(max(0.0, min(1.0, wanted)) * width)
    reach = solid if measured is None else round(max(0.0, min(1.0, measured)) * width)
    text = Text()
    text.append("█" * min(solid, reach), style="cyan")
    text.append("█" * max(0, solid - reach), style="cyan dim")  # set, not (yet) reached
    text.append("▒" * max(0, reach - solid), style="yellow")  # reached beyond the set weight
    text.append("·" * (width - max(solid, reach)), style="dim")
    return text


def _hooks(view: DeploymentView, function: str, names: tuple[str, ...]) -> Text:
    """`hooks ✔ ok BeforeAllow  ◌ run Allow  ◷ wait AfterAllow`."""
    parts = [Text("hooks")]
    instance = view.instances.get(function)
    for name in names:
        event = instance.events.get(name) if instance is not None else None
        shown = short_status(event.status if event else Status.PENDING)
        parts.append(shown + f" {name.removesuffix('Traffic').replace('AllowTest', 'Test')}")
    return Text.assemble(parts[0], " ", Text("  ").join(parts[1:]))


class WeightGauge(Static):
    """The gauge panel of the deployment screen; hidden for deployments without one."""

    DEFAULT_CSS = """
    WeightGauge {
        height: auto; padding: 0 1; border-top: round $primary-darken-1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._last: tuple[DeploymentView, float, Text | None] | None = None

    def on_resize(self) -> None:
        if self._last is not None:  # the bars fit the width: drawn again for the new one
            self.show(*self._last)

    def show(self, view: DeploymentView, run_now: float, host: Text | None = None) -> None:
        """Draw `view`'s gauge; `run_now` is the time on the run's clock (the screen's), `host`
        the line on an ECS service's host (None: none shown)."""
        self._last = (view, run_now, host)
        self.display = shows_gauge(view)
        if not self.display:
            return
        width = self.size.width or 78  # the content's width (inside the padding)
        self.border_title = "traffic"
        self.update(gauge_text(view, run_now, width, host))
