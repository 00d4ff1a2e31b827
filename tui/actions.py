"""Every key of the console in one registry: it feeds the bindings, the footer, the help screen
and the command palette, so they cannot disagree.

Destructive keys are capitals and always open a confirmation that defaults to No.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class KeyAction:
    id: str
    key: str
    action: str
    description: str
    help: str
    scopes: tuple[str, ...]
    show: bool = True
    key_display: str | None = None
    palette: bool = True

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.description,
            show=self.show,
            key_display=self.key_display,
            tooltip=self.help,
            id=self.id,
        )


APP = "app"
DASHBOARD = "dashboard"
DEPLOYMENT = "deployment"

ACTIONS: tuple[KeyAction, ...] = (
    KeyAction(
        "help",
        "question_mark",
        "help",
        "Help",
        "Show every key and what it does",
        (APP,),
        key_display="?",
    ),
    KeyAction(
        "palette",
        "colon",
        "command_palette",
        "Commands",
        "Open the command palette (also ctrl+p)",
        (APP,),
        key_display=":",
        palette=False,
    ),
    KeyAction(
        "quit",
        "q",
        "quit_console",
        "Quit",
        "Quit; asks what to do with running deployments",
        (APP,),
    ),
    KeyAction(
        "new",
        "n",
        "new_deployment",
        "New deployment",
        "Choose a revision, group and config; see the plan; deploy",
        (DASHBOARD, DEPLOYMENT),
    ),
    KeyAction(
        "open",
        "enter",
        "open_selected",
        "Open",
        "Open the selected deployment or instance",
        (DASHBOARD, DEPLOYMENT),
        show=False,
    ),
    KeyAction(
        "replay",
        "p",
        "replay",
        "Replay",
        "Replay the selected deployment from its journal",
        (DASHBOARD, DEPLOYMENT),
    ),
    KeyAction(
        "watch",
        "w",
        "watch_folder",
        "Watch",
        "Watch a revision folder: re-validate (and deploy) on change",
        (DASHBOARD,),
    ),
    KeyAction(
        "stop",
        "S",
        "stop",
        "Stop",
        "Stop the deployment: end running hooks, skip the rest",
        (DEPLOYMENT,),
        key_display="S",
    ),
    KeyAction(
        "rollback",
        "R",
        "rollback",
        "Roll back",
        "Stop and roll back a running deployment, or roll back a finished one",
        (DEPLOYMENT,),
        key_display="R",
    ),
    KeyAction(
        "hold",
        "h",
        "hold_shift",
        "Hold",
        "Hold the traffic shift: the weight stays, the countdown to the next step pauses",
        (DEPLOYMENT,),
    ),
    KeyAction(
        "resume",
        "r",
        "resume_shift",
        "Resume",
        "Resume a held traffic shift: the countdown goes on where it paused",
        (DEPLOYMENT,),
    ),
    KeyAction(
        "skip",
        "greater_than_sign",
        "skip_wait",
        "Skip wait",
        "Skip the traffic shift's current wait: its next step now",
        (DEPLOYMENT,),
        key_display=">",
    ),
    KeyAction(
        "promote",
        "P",
        "promote_shift",
        "Promote",
        "Promote the traffic shift to 100% at once (asks first)",
        (DEPLOYMENT,),
        key_display="P",
    ),
    KeyAction(
        "linked",
        "l",
        "open_linked",
        "Linked",
        "Open the rollback this deployment started, or the one it rolls back",
        (DEPLOYMENT,),
    ),
    KeyAction(
        "filter",
        "slash",
        "filter",
        "Filter",
        "Filter instances by name or status (e.g. failed, !web-1)",
        (DEPLOYMENT,),
        key_display="/",
    ),
    KeyAction(
        "follow",
        "f",
        "follow",
        "Follow",
        "Follow the selected instance's output (scrolling up pauses it; f follows again)",
        (DEPLOYMENT,),
    ),
    KeyAction(
        "faster",
        "plus",
        "replay_speed(2)",
        "Faster",
        "Replay twice as fast",
        (DEPLOYMENT,),
        key_display="+",
        show=False,
    ),
    KeyAction(
        "slower",
        "minus",
        "replay_speed(0.5)",
        "Slower",
        "Replay half as fast",
        (DEPLOYMENT,),
        key_display="-",
        show=False,
    ),
    KeyAction(
        "pause",
        "space",
        "replay_pause",
        "Pause",
        "Pause or resume a replay",
        (DEPLOYMENT,),
        show=False,
    ),
    KeyAction(
        "back",
        "escape",
        "back",
        "Back",
        "Back to the previous screen, or clear the filter",
        (DEPLOYMENT,),
        key_display="esc",
    ),
)


def bindings(scope: str) -> list[BindingType]:
    return [a.binding() for a in ACTIONS if scope in a.scopes]


def actions_for(scope: str) -> tuple[KeyAction, ...]:
    return tuple(a for a in ACTIONS if scope in a.scopes or APP in a.scopes)
