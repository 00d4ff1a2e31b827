"""Choose a revision folder to watch, and optionally a group to deploy each valid change to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

if TYPE_CHECKING:
    from tui.app import DeployDeckApp

NO_DEPLOY = "__none__"


@dataclass(frozen=True)
class WatchRequest:
    folder: Path
    deploy_to: tuple[str, str] | None


class WatchScreen(ModalScreen[WatchRequest | None]):
    DEFAULT_CSS = """
    WatchScreen { align: center middle; }
    WatchScreen > Vertical {
        width: 90; height: auto; border: thick $primary; background: $surface; padding: 1 2;
    }
    WatchScreen Horizontal { height: auto; margin-bottom: 1; }
    WatchScreen Label { width: 12; padding-top: 1; }
    WatchScreen Input, WatchScreen Select { width: 1fr; }
    WatchScreen #buttons { align-horizontal: right; }
    WatchScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        app: DeployDeckApp = self.app  # type: ignore[assignment]
        workspace = app.engine.workspace
        groups = [
            (f"deploy each valid change to {a}/{g}", f"{a}/{g}")
            for a, application in workspace.applications.items()
            for g in application.deployment_groups
        ]
        with Vertical():
            yield Static(
                "Watch a revision folder: on every change its appspec is validated again; "
                "optionally each valid change is deployed."
            )
            with Horizontal():
                yield Label("folder")
                yield Input(placeholder="path to a revision folder", id="folder")
            with Horizontal():
                yield Label("then")
                yield Select(
                    [("only validate", NO_DEPLOY), *groups],
                    value=NO_DEPLOY,
                    allow_blank=False,
                    id="deploy",
                )
            with Horizontal(id="buttons"):
                yield Button("Watch", id="watch", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#folder")
    @on(Button.Pressed, "#watch")
    def _watch(self) -> None:
        folder = Path(self.query_one("#folder", Input).value.strip()).expanduser()
        if not folder.is_dir():
            self.notify(f"{folder} is not a folder", severity="error")
            return
        target = self.query_one("#deploy", Select).value
        deploy_to = None if target == NO_DEPLOY else tuple(str(target).split("/", 1))
        self.dismiss(WatchRequest(folder.resolve(), deploy_to))  # type: ignore[arg-type]
