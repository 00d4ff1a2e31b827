"""The help screen: every key from the registry and the screens' own bindings; keys that do
nothing on the screen help was opened on are marked."""

from __future__ import annotations

from rich.console import Console

from tui.screens.help import keys_table


class FinishedDeployment:
    """Stands in for a deployment screen whose deployment has ended."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if action in ("stop", "replay_speed", "replay_pause") else True

    def action_stop(self) -> None: ...

    def action_rollback(self) -> None: ...


def rendered(screen: object | None) -> list[str]:
    console = Console(width=120, record=True)
    console.print(keys_table(screen))  # type: ignore[arg-type]
    return console.export_text().splitlines()


def test_keys_that_do_nothing_now_are_marked() -> None:
    lines = rendered(FinishedDeployment())
    stop = next(line for line in lines if line.startswith("S "))
    rollback = next(line for line in lines if line.startswith("R "))
    assert "(not now)" in stop and "(not now)" not in rollback


def test_other_screens_keys_are_listed() -> None:
    text = "\n".join(rendered(None))
    for expected in ("Instance detail", "New deployment form", "ctrl+d", "Questions", "y "):
        assert expected in text
    assert "(not now)" not in text
