"""What a stop leaves in and out of the load balancer, instance by instance, in the words the
stop and rollback questions use (console) and the stop and rollback commands print (CLI). The
rule is docs/traffic.md's "Stop and rollback": an instance whose install was under way stays
out of service until a deployment's AllowTraffic finds it healthy; one that was only drained
goes back; one being allowed takes traffic once healthy; the others keep what they have."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from engine.model import Status, TrafficState
from tui.render.state import DeploymentView

BLOCK_STEPS = frozenset({"BlockTraffic", "AfterBlockTraffic"})
ALLOW_STEPS = frozenset({"AllowTraffic", "AfterAllowTraffic"})
NOT_BLOCKED_YET = frozenset({"BeforeBlockTraffic"})


class AfterStop(StrEnum):
    STAYS_IN = "stays in service"
    BACK_IN = "back in service once healthy"
    STAYS_OUT = "stays out of service"


@dataclass(frozen=True)
class Position:
    """Where an instance is when the stop comes."""

    name: str
    status: str
    event: str | None  # the lifecycle event under way, if any
    out_now: bool  # the balancer has it out of service now


def after_stop(position: Position) -> AfterStop:
    if position.status != Status.IN_PROGRESS:
        return AfterStop.STAYS_OUT if position.out_now else AfterStop.STAYS_IN
    event = position.event
    if event is None or event in NOT_BLOCKED_YET:
        return AfterStop.STAYS_IN
    if event in BLOCK_STEPS or event in ALLOW_STEPS:
        return AfterStop.BACK_IN
    return AfterStop.STAYS_OUT


def positions_of_view(view: DeploymentView) -> list[Position]:
    """The console's positions: from its fold of the journal."""
    out = {name: _out(state.state) for name, state in view.traffic.items()}
    return [
        Position(name, instance.status, instance.current_event, out.get(name, False))
        for name, instance in view.instances.items()
    ]


def _out(state: str | None) -> bool:
    return state == TrafficState.OUT_OF_SERVICE


def stop_paragraph(view: DeploymentView, *, rollback: bool) -> str:
    """What a stop of `view`'s deployment does to traffic now ("" without traffic control);
    `rollback`: a rollback follows the stop."""
    if "BlockTraffic" not in view.lifecycle:
        return ""
    if view.blue:
        return blue_green_stop_text(view, rollback=rollback)
    behind = len(view.traffic) or len(view.instances)
    return stop_traffic_text(
        positions_of_view(view), behind, view.minimum_healthy, rollback=rollback
    )


def rollback_paragraph(view: DeploymentView) -> str:
    """What rolling back `view`'s ended deployment does to traffic ("" without traffic
    control)."""
    if "BlockTraffic" not in view.lifecycle:
        return ""
    return rollback_traffic_text(positions_of_view(view))


def blue_green_stop_text(view: DeploymentView, *, rollback: bool) -> str:
    """A blue/green stop's traffic paragraph: a stop leaves traffic on the fleet that has it
    (neither fleet is touched further); a rollback then moves it back to blue."""
    blue, green = list(view.blue), list(view.green)
    on_green = view.traffic_on == "Green"
    waiting = view.wait.wait_type if view.wait is not None else ""
    if on_green:
        now = (
            f"Traffic: the stop leaves traffic on green ({names_text(green)}); blue "
            f"({names_text(blue)}) stays out of service and running, not terminated"
        )
        now += " (the termination wait ends unfinished)." if waiting else "."
    elif view.status == Status.READY or waiting == "READY_WAIT":
        now = (
            f"Traffic: it stays on blue ({names_text(blue)}); green ({names_text(green)}) "
            "never took any."
        )
    else:
        now = (
            f"Traffic: the stop leaves each instance where the reroute had it: green "
            f"({names_text(green)}) registered so far serves, blue ({names_text(blue)}) "
            "blocked so far stays out."
        )
    if rollback:
        return (
            f"{now} The rollback then moves traffic back: AllowTraffic on blue, BlockTraffic "
            "on green, which stays running out of service."
        )
    return now


def stop_traffic_text(
    positions: Iterable[Position], behind: int, minimum: int | None, *, rollback: bool
) -> str:
    """The stop question's traffic paragraph: which instances stay out of service and why,
    which go back, and how many serve afterwards. `behind`: instances behind the balancer."""
    found = list(positions)
    groups: dict[str, list[str]] = {"mid-install": [], "drained": [], "allowing": [], "failed": []}
    for p in found:
        outcome = after_stop(p)
        if outcome is AfterStop.STAYS_OUT:
            groups["failed" if p.status != Status.IN_PROGRESS else "mid-install"].append(p.name)
        elif outcome is AfterStop.BACK_IN:
            groups["drained" if p.event in BLOCK_STEPS else "allowing"].append(p.name)
    out = len(groups["mid-install"]) + len(groups["failed"])
    parts = [f"{max(0, behind - out)} of {behind} instances in service after the stop"]
    if minimum is not None:
        parts[0] += f" (minimum healthy {minimum}: a stop never goes below it)"
    parts[0] += "."
    if groups["mid-install"]:
        who = groups["mid-install"]
        then = "the rollback's, which follows" if rollback else "the next deployment's"
        parts.append(
            f"{names_text(who)} {_verb(who, 'stays', 'stay')} out of service: "
            f"{_their(who)} install is ended midway, so {_they(who)} "
            f"{_verb(who, 'serves', 'serve')} again only once a deployment's AllowTraffic "
            f"finds {_them(who)} healthy ({then})."
        )
    if groups["failed"]:
        who = groups["failed"]
        parts.append(
            f"{names_text(who)} {_verb(who, 'stays', 'stay')} out of service: "
            f"{_they(who)} failed earlier."
        )
    if groups["drained"]:
        who = groups["drained"]
        parts.append(
            f"{names_text(who)} {_verb(who, 'goes', 'go')} back in service once healthy: "
            f"{_they(who)} {_verb(who, 'was', 'were')} only drained."
        )
    if groups["allowing"]:
        who = groups["allowing"]
        parts.append(
            f"{names_text(who)} {_verb(who, 'stays', 'stay')} registered and "
            f"{_verb(who, 'serves', 'serve')} once {_their(who)} health checks pass."
        )
    return "Traffic: " + " ".join(parts)


def rollback_traffic_text(positions: Iterable[Position]) -> str:
    """The rollback question's traffic sentence, once the deployment has ended."""
    out = [p.name for p in positions if p.out_now]
    restore = (
        "BlockTraffic, the install and AllowTraffic run on each instance it redeploys, "
        "so every one serves again once healthy"
    )
    if not out:
        return f"Traffic: {restore}."
    return (
        f"Traffic: {names_text(out)} {_verb(out, 'is', 'are')} out of service now; {restore} "
        f"({names_text(out)} back in rotation)."
    )


def names_text(names: list[str], limit: int = 6) -> str:
    """`web-1, web-2 and 3 more`; "none" for none."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _verb(names: list[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def _they(names: list[str]) -> str:
    return "it" if len(names) == 1 else "they"


def _them(names: list[str]) -> str:
    return "it" if len(names) == 1 else "them"


def _their(names: list[str]) -> str:
    return "its" if len(names) == 1 else "their"
