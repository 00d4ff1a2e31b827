"""The traffic view of a deployment behind a load balancer: the group's serving capacity as a
gauge (minimum healthy hosts marked), each instance's balancer state, the requests served by
each revision, and the alarm lights. Hidden for deployments without traffic control or alarms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from engine import events as ev
from engine.model import DeploymentOption, RevisionRef, TrafficHealth, TrafficState
from tui.render.glyphs import revision_label
from tui.render.state import DeploymentView

if TYPE_CHECKING:
    from tui.demo import TrickleCounts

GAUGE_CELLS = 20
INSTANCE_LINES = 2  # instance rows shown before "+N more"

# (glyph, words, style) of an instance's balancer state; draining adds its open connections.
_IN_SERVICE = {
    TrafficHealth.OK: ("●", "serving", "green"),
    TrafficHealth.UNKNOWN: ("◌", "checking", "cyan"),
    TrafficHealth.FAILING: ("✖", "failing", "red"),
}
_DRAINING = ("◐", "draining", "yellow")
_OUT = ("○", "out", "dim")

# An alarm's state -> (glyph, style); observe-only ones never show red: they stop nothing.
_ALARM = {
    "OK": ("●", "green"),
    "ALARM": ("◉", "bold red"),
    "INSUFFICIENT_DATA": ("◌", "yellow"),
    "ERROR": ("?", "yellow"),
}


def has_traffic(view: DeploymentView) -> bool:
    """Whether the deployment has anything for the traffic view to show."""
    option = view.info.deployment_style.deployment_option
    return bool(view.traffic or view.alarms) or option == DeploymentOption.WITH_TRAFFIC_CONTROL


def instance_cell(state: ev.InstanceTrafficChanged) -> Text:
    """`● web-1 serving`, `◐ web-2 draining 3 open`, `○ web-3 out`."""
    if state.state == TrafficState.IN_SERVICE:
        glyph, words, style = _IN_SERVICE[TrafficHealth(state.health)]
    elif state.state == TrafficState.DRAINING:
        glyph, words, style = _DRAINING
        if state.open_connections is not None:
            words += f" {state.open_connections} open"
    else:
        glyph, words, style = _OUT
    return Text.assemble((f"{glyph} ", style), state.instance, (f" {words}", style))


def gauge(view: DeploymentView) -> Text:
    """`capacity ████████░░│░░ 2/4 serving, minimum healthy 2`: in service and healthy over
    every instance behind the balancer; the bar turns red below the minimum."""
    total = len(view.traffic)
    serving = sum(
        1
        for s in view.traffic.values()
        if s.state == TrafficState.IN_SERVICE and s.health == TrafficHealth.OK
    )
    minimum = view.minimum_healthy
    filled = round(GAUGE_CELLS * serving / total) if total else 0
    mark = (
        min(GAUGE_CELLS - 1, round(GAUGE_CELLS * minimum / total))
        if total and minimum is not None
        else None
    )
    low = minimum is not None and serving < minimum
    bar = Text()
    for cell in range(GAUGE_CELLS):
        if cell == mark:
            bar.append("│" if cell >= filled else "┃", "bold yellow")
        elif cell < filled:
            bar.append("█", "red" if low else "green")
        else:
            bar.append("░", "dim")
    words = f" {serving}/{total} serving" if total else " no balancer state yet"
    if minimum is not None:
        words += f", minimum healthy {minimum} (│)"
    return Text.assemble(("capacity ", "bold"), bar, (words, "red" if low else ""))


def served(view: DeploymentView) -> Text:
    """`served web-v1 1200 · web-v2 340`: requests the balancer sent to each revision."""
    if not view.served:
        return Text()
    names = {view.info.revision.sha256: view.info.revision}
    if view.info.previous_revision is not None:
        names[view.info.previous_revision.sha256] = view.info.previous_revision
    parts = [
        f"{_revision_name(names.get(sha))} {count}"
        for sha, count in sorted(view.served.items(), key=lambda item: item[0] != _first(view))
    ]
    return Text.assemble(("served ", "bold"), " · ".join(parts))


def _first(view: DeploymentView) -> str:
    previous = view.info.previous_revision
    return previous.sha256 if previous is not None else ""


def _revision_name(ref: RevisionRef | None) -> str:
    return (revision_label(ref) or ref.short()) if ref is not None else "unknown"


def trickle_line(counts: TrickleCounts) -> Text:
    """`trickle answered v1 29 · v2 30 · 0 failed`: the demo's own requests through the
    balancer while this deployment ran, as its client saw them (refused: nothing listened)."""
    parts = [f"{version} {count}" for version, count in counts.served.items()]
    text = Text.assemble(("trickle ", "bold"), "answered ", " · ".join(parts) or "nothing yet")
    text.append(f" · {counts.failed} failed", "bold red" if counts.failed else "green")
    if counts.last_failure:
        text.append(f" (last: {counts.last_failure})", "red")
    if counts.refused:
        text.append(f" · {counts.refused} refused (balancer not listening)", "dim")
    return text


def alarm_lights(view: DeploymentView) -> Text:
    """`alarms ● errors OK 0.01/0.05 · ◉ p99 ALARM 812/500 observe-only`."""
    text = Text("alarms ", style="bold")
    for index, alarm in enumerate(view.alarms.values()):
        if index:
            text.append(" · ")
        glyph, style = _ALARM.get(alarm.state, ("?", "yellow"))
        if alarm.observe_only and alarm.state == "ALARM":
            style = "yellow"
        reading = (
            f" {_number(alarm.value)}/{_number(alarm.threshold)}"
            if alarm.value is not None and alarm.threshold is not None
            else ""
        )
        text.append(f"{glyph} {alarm.name} {alarm.state}{reading}", style)
        if alarm.observe_only:
            text.append(" observe-only", "italic dim")
    return text


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def traffic_text(view: DeploymentView, width: int, trickle: TrickleCounts | None = None) -> Text:
    """The whole view for `width` columns: gauge and served, instances, the demo trickle's
    answers (when given), alarm lights."""
    lines: list[Text] = []
    if view.traffic or view.info.deployment_style.deployment_option == (
        DeploymentOption.WITH_TRAFFIC_CONTROL
    ):
        head, counts = gauge(view), served(view)
        if counts.plain and len(head) + 2 + len(counts) <= width:
            lines.append(Text.assemble(head, "  ", counts))
        else:
            lines.extend([head, counts] if counts.plain else [head])
        lines.extend(_instance_rows(view, width))
    if trickle is not None:
        lines.append(trickle_line(trickle))
    if view.alarms:
        lines.append(alarm_lights(view))
    for line in lines:
        line.no_wrap = True
        line.overflow = "ellipsis"
    return Text("\n").join(lines)


def _instance_rows(view: DeploymentView, width: int) -> list[Text]:
    cells = [instance_cell(s) for s in view.traffic.values()]
    if not cells:
        return []
    cell_width = max(len(c) for c in cells) + 2
    per_row = max(1, width // cell_width)
    room = per_row * INSTANCE_LINES
    if len(cells) > room:  # the last place says how many are not shown
        cells = [*cells[: room - 1], Text(f"+{len(cells) - room + 1} more", style="dim")]
    rows: list[Text] = []
    for start in range(0, len(cells), per_row):
        row = Text()
        for cell in cells[start : start + per_row]:
            row.append_text(cell)
            row.append(" " * (cell_width - len(cell)))
        rows.append(row)
    return rows


class TrafficView(Static):
    """The traffic view of one deployment; `show` redraws it from the console's fold."""

    DEFAULT_CSS = """
    TrafficView { height: auto; max-height: 7; padding: 0 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._view: DeploymentView | None = None
        self._trickle: TrickleCounts | None = None

    def show(self, view: DeploymentView, trickle: TrickleCounts | None = None) -> None:
        self._view, self._trickle = view, trickle
        self.display = has_traffic(view)
        if self.display:
            width = (self.size.width or self.app.size.width - 2) - 1
            self.update(traffic_text(view, max(20, width), trickle))

    def on_resize(self, event: Resize) -> None:
        if self._view is not None:
            self.show(self._view, self._trickle)
