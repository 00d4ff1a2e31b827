"""The deployment screen's keys for a running traffic shift (Lambda, ECS): hold it (the weight
stays, the countdown pauses), resume it, skip the current wait, promote to 100% at once (asked
first). Each key is offered only while it applies; the engine journals each request."""

from __future__ import annotations

from collections.abc import Callable

from engine.events import ShiftAction, ShiftState
from tui.messages import RunEngineCommand
from tui.render.state import DeploymentView
from tui.screens.confirm import ConfirmScreen

# action name -> (what the engine is asked, the states of the shift it applies in)
SHIFT_KEYS: dict[str, tuple[ShiftAction, tuple[str, ...]]] = {
    "hold_shift": (ShiftAction.HOLD, (ShiftState.SHIFTING,)),
    "resume_shift": (ShiftAction.RESUME, (ShiftState.HELD,)),
    "skip_wait": (ShiftAction.SKIP, (ShiftState.SHIFTING,)),
    "promote_shift": (ShiftAction.PROMOTE, (ShiftState.SHIFTING, ShiftState.HELD)),
}
DONE = {
    ShiftAction.HOLD: "held: the weight stays until you resume",
    ShiftAction.RESUME: "resumed",
    ShiftAction.SKIP: "moved to its next step",
    ShiftAction.PROMOTE: "promoted: all traffic to the target",
}


def shift_key_applies(view: DeploymentView | None, action: str, live: bool) -> bool:
    """Whether the key for `action` does something now: a live, unfinished deployment whose
    traffic shift is in a state the action acts on."""
    if view is None or not live or view.ended is not None or view.shift is None:
        return False
    return view.shift.state in SHIFT_KEYS[action][1]


def describe_promote(view: DeploymentView | None, deployment_id: str) -> tuple[str, str]:
    """The promote question, from the state now (it follows the shift while open)."""
    title = f"Promote {deployment_id} to 100%?"
    shift = view.shift if view is not None else None
    if view is None or shift is None or shift.state not in SHIFT_KEYS["promote_shift"][1]:
        return title, f"{deployment_id} is not shifting traffic now: there is nothing to promote."
    if view.task_sets is not None:
        where = f"service {view.task_sets.service}'s production listener"
        target = "the replacement task set"
    elif view.shifted is not None:
        where = f"alias {view.shifted.function}:{view.shifted.alias}"
        target = f"version {view.shifted.target_version}"
    else:
        where, target = "the router", "the target"
    held = " (held now)" if shift.state == ShiftState.HELD else ""
    return title, (
        f"All traffic of {where} goes to {target} at once: it is at step {shift.step} of "
        f"{shift.steps}, {shift.weight:.0%}{held}, and the remaining steps and waits are skipped. "
        "The deployment then goes on with AfterAllowTraffic. A stop or an alarm still puts "
        "traffic back on the original.\n\n(CodeDeploy offers no promote; deploydeck journals "
        "it as your request.)"
    )


class ShiftKeys:
    """The actions, mixed into the deployment screen (which provides what is declared here)."""

    deployment_id: str
    is_active: bool
    post_message: Callable[..., bool]
    _ask: Callable[[ConfirmScreen, Callable[[bool | None], None]], None]

    @property
    def view(self) -> DeploymentView | None:
        raise NotImplementedError

    @property
    def live(self) -> bool:
        raise NotImplementedError

    def _control(self, action: str) -> None:
        if not self.is_active or not shift_key_applies(self.view, action, self.live):
            return
        wanted, _ = SHIFT_KEYS[action]
        deployment_id = self.deployment_id
        self.post_message(
            RunEngineCommand(
                lambda engine: engine.control_traffic_shift(deployment_id, wanted),
                f"Traffic shift of {deployment_id} {DONE[wanted]}",
            )
        )

    def action_hold_shift(self) -> None:
        self._control("hold_shift")

    def action_resume_shift(self) -> None:
        self._control("resume_shift")

    def action_skip_wait(self) -> None:
        self._control("skip_wait")

    def action_promote_shift(self) -> None:
        if not self.is_active or not shift_key_applies(self.view, "promote_shift", self.live):
            return
        deployment_id = self.deployment_id

        def describe() -> tuple[str, str]:
            return describe_promote(self.view, deployment_id)

        def answered(yes: bool | None) -> None:
            if yes:
                self._control("promote_shift")  # re-checked: the shift may have ended meanwhile

        self._ask(ConfirmScreen("", "", "Promote", describe=describe), answered)
