"""A blue/green deployment's fleets at a glance: blue and green, the one taking traffic, and
the wait under way with its countdown and the key that ends it (hidden for other kinds)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.render.glyphs import duration
from tui.render.state import DeploymentView

WHAT_CONTINUE_DOES = {
    "READY_WAIT": "C moves traffic to green now",
    "TERMINATION_WAIT": "C ends blue now",
}


def names(fleet: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(fleet[:limit])
    return shown + (f" +{len(fleet) - limit}" if len(fleet) > limit else "")


class FleetWaits(Static):
    DEFAULT_CSS = """
    FleetWaits { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.display = False
        self._seen: dict[tuple[str, float], float] = {}  # a wait -> when it was first drawn

    def show(self, view: DeploymentView | None, now: float, live: bool = True) -> None:
        """Draw `view`'s fleets and wait (`now` on the console's clock); hide for others."""
        if view is None or not view.blue:
            self.display = False
            return
        self.display = True
        serving = view.traffic_on or "Blue"
        fleets = Text.assemble(
            ("blue ", "bold blue"),
            names(view.blue),
            "  ·  ",
            ("green ", "bold green"),
            names(view.green),
            "  ·  traffic on ",
            (serving.lower(), "bold " + ("green" if serving == "Green" else "blue")),
        )
        lines = [fleets]
        wait = view.wait
        if wait is not None:
            left = ""
            if wait.deadline is not None:
                scale = view.info.options.time_scale or 1.0
                first = self._seen.setdefault((wait.wait_type, wait.time), now)
                remaining = (wait.deadline - wait.time) / scale - (now - first)
                left = f" {duration(max(0.0, remaining))} left, then {wait.action}"
            key = f"  ·  {WHAT_CONTINUE_DOES.get(wait.wait_type, '')}" if live else ""
            lines.append(Text.assemble((wait.wait_type, "bold reverse"), left, key))
        elif view.wait_ended:
            lines.append(Text(view.wait_ended, style="dim"))
        self.update(Text("\n").join(lines))
