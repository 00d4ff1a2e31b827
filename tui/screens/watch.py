"""Choose a revision folder to watch, and optionally a group to deploy each valid change to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.screens.safe import leave
from tui.widgets.select import SafeSelect

NO_DEPLOY = "__none__"


@dataclass(frozen=True)
class WatchRequest:
    folder: Path
    deploy_to: tuple[str, str] | None


class WatchScreen(ModalScreen[WatchRequest | None]):
    DEFAULT_CSS = """
    WatchScreen { align: center middle; }
    WatchScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
        background: $surface; padding: 0 1;
    }
    WatchScreen Horizontal { height: auto; margin-bottom: 1; }
    WatchScreen Label { width: 8; padding-top: 1; }
    WatchScreen Input, WatchScreen Select { width: 1fr; }
    WatchScreen #buttons { align-horizontal: right; }
    WatchScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, groups: list[tuple[str, str]]) -> None:
        super().__init__()
        self.groups = groups  # (application, group) each valid change may deploy to
        self.folder = Input(placeholder="path to a revision folder", id="folder")
        self.deploy: SafeSelect | None = None  # its choices come from the app, in compose

    def compose(self) -> ComposeResult:
        groups = [(f"deploy each valid change to {a}/{g}", f"{a}/{g}") for a, g in self.groups]
        with Vertical():
            yield Static(
                "Watch a revision folder: on every change its appspec is validated again; "
                "optionally each valid change is deployed (not when the group already runs "
                "that content). The watch lasts while the console is open: it is not restored "
                "when the console starts again."
            )
            with Horizontal():
                yield Label("folder")
                yield self.folder
            with Horizontal():
                yield Label("then")
                self.deploy = SafeSelect(
                    [("only validate", NO_DEPLOY), *groups],
                    value=NO_DEPLOY,
                    allow_blank=False,
                    id="deploy",
                )
                yield self.deploy
            with Horizontal(id="buttons"):
                yield Button("Watch", id="watch", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        leave(self, None)

    @on(Input.Submitted, "#folder")
    @on(Button.Pressed, "#watch")
    def _watch(self) -> None:
        if self.deploy is None or not self.is_active:
            return
        folder = Path(self.folder.value.strip()).expanduser()
        if not folder.is_dir():
            self.notify(f"{folder} is not a folder", severity="error")
            return
        target = self.deploy.value
        deploy_to = None if target == NO_DEPLOY else tuple(str(target).split("/", 1))
        leave(self, WatchRequest(folder.resolve(), deploy_to))  # type: ignore[arg-type]
