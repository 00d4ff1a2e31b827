"""The traffic gauge of a traffic-shifting deployment: the alias with each version's weight as
a bar (set weight solid, the gap to the measured actual weight shaded), the schedule's step and
the countdown to the next shift (in the deployment's time, and in real time when it is scaled),
the traffic hooks' states and the alarm lights. Drawn from the journal's fold alone.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from engine.model import ComputePlatform, Status
from tui.render.glyphs import duration, short_status
from tui.render.state import DeploymentView

TRAFFIC_HOOKS = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
ALARM_STYLES = {"OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow"}
BAR_MIN, BAR_MAX = 10, 50


def shows_gauge(view: DeploymentView) -> bool:
    """A gauge is drawn for deployments that shift traffic by weight."""
    return view.shifted is not None or view.info.compute_platform == ComputePlatform.LAMBDA


def gauge_text(
    view: DeploymentView, run_now: float | None, width: int = 80, *, live: bool = True
) -> Text:
    """The gauge's lines for `width` columns; `run_now` is the time on the run's clock (for the
    countdown), None when unknown."""
    gauge, shift = view.gauge, view.shifted
    function = next(iter(view.instances), "")
    lines: list[Text] = []
    scale = view.info.options.time_scale
    if shift is None:
        alias = next((i.host for i in view.instances.values()), "").removeprefix("lambda:")
        lines.append(
            Text.assemble(
                (f"{function}:{alias}" if alias else function, "bold"),
                ("  traffic not shifted yet", "dim"),
            )
        )
    else:
        title = Text.assemble((f"{shift.function}:{shift.alias}", "bold"))
        if gauge is not None and gauge.steps:
            title.append(f"  step {gauge.step} of {gauge.steps}")
            if gauge.next_shift_at is None:
                title.append(" · last step", style="dim")
            elif view.ended is None and live and run_now is not None:
                left = max(0.0, gauge.next_shift_at - run_now)
                title.append(f" · next shift in {duration(left) or '0.0s'}")
                if scale != 1.0:
                    title.append(f" (time x{scale:g}: {duration(left / scale) or '0.0s'} real)")
        lines.append(title)
        set_target = gauge.set_weight if gauge is not None else shift.weight
        actual = gauge.actual_weight if gauge is not None else None
        label = max(len(shift.original_version), len(shift.target_version)) + 1
        numbers = 24
        bar = max(BAR_MIN, min(BAR_MAX, width - label - numbers - 4))
        rows = (
            (shift.original_version, 1.0 - set_target, None if actual is None else 1.0 - actual),
            (shift.target_version, set_target, actual),
        )
        for version, wanted, measured in rows:
            lines.append(_bar_line(f"v{version}".ljust(label), wanted, measured, bar))
        if gauge is not None:
            lines.append(
                Text(
                    f"actual over the last {gauge.calls} call(s)"
                    if gauge.calls
                    else "actual: no calls in the last 10 s to measure",
                    style="dim",
                )
            )
    hooks, alarms = _hooks(view, function), _alarms(view)
    if hooks.cell_len + 2 + alarms.cell_len <= width:
        lines.append(Text.assemble(hooks, "  ", alarms))
    else:
        lines.extend([hooks, alarms])
    return Text("\n").join(lines)


def _bar_line(label: str, wanted: float, measured: float | None, width: int) -> Text:
    """`v2 ████▒▒·········  10% set   12% actual`: solid to the set weight, shaded to actual."""
    solid = round(max(0.0, min(1.0, wanted)) * width)
    reach = solid if measured is None else round(max(0.0, min(1.0, measured)) * width)
    text = Text(label + " ")
    text.append("█" * min(solid, reach), style="cyan")
    text.append("█" * max(0, solid - reach), style="cyan dim")  # set, not (yet) reached
    text.append("▒" * max(0, reach - solid), style="yellow")  # reached beyond the set weight
    text.append("·" * (width - max(solid, reach)), style="dim")
    shown = "  —  " if measured is None else f"{measured:5.0%}"
    text.append(f" {wanted:4.0%} set {shown} actual")
    return text


def _hooks(view: DeploymentView, function: str) -> Text:
    """`hooks ✔ ok BeforeAllow  ◌ run Allow  ◷ wait AfterAllow`."""
    parts = [Text("hooks")]
    instance = view.instances.get(function)
    for name in TRAFFIC_HOOKS:
        event = instance.events.get(name) if instance is not None else None
        shown = short_status(event.status if event else Status.PENDING)
        parts.append(shown + f" {name.removesuffix('Traffic')}")
    return Text.assemble(parts[0], " ", Text("  ").join(parts[1:]))


def _alarms(view: DeploymentView) -> Text:
    """`alarms ● errors OK  ● latency ALARM`: a light per alarm, its state in words."""
    text = Text("alarms ")
    if not view.alarms:
        text.append("none", style="dim")
    lights = []
    for name, reading in sorted(view.alarms.items()):
        light = Text("● ", style=ALARM_STYLES.get(reading.state, ""))
        light.append(f"{name} {reading.state}")
        lights.append(light)
    return text + Text("  ").join(lights)


class WeightGauge(Static):
    """The gauge panel of the deployment screen; hidden for deployments without one."""

    DEFAULT_CSS = """
    WeightGauge { height: auto; padding: 0 1; border: round $primary-darken-1; }
    """

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._seen: tuple[float, float] | None = None  # (gauge event time, wall time seen)

    def show(self, view: DeploymentView, screen_now: float, live: bool) -> None:
        """Draw `view`'s gauge. Live, the run's clock is extrapolated from the last gauge event
        at the deployment's time scale; a replay's time is the journal's own."""
        self.display = shows_gauge(view)
        if not self.display:
            return
        gauge = view.gauge
        run_now: float | None = None
        if gauge is not None:
            if not live:
                run_now = screen_now
            else:
                if self._seen is None or self._seen[0] != gauge.time:
                    self._seen = (gauge.time, screen_now)
                run_now = gauge.time + (screen_now - self._seen[1]) * view.info.options.time_scale
        width = self.size.width - 2 if self.size.width else 78
        self.border_title = "traffic"
        self.update(gauge_text(view, run_now, width, live=live))
