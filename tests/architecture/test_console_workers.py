"""Console workers fail loudly: every `@work` in tui/ passes exit_on_error=False (a failure
must not end the console) and runs on the App or on a class that mixes in SaysWorkerFailures
(Worker.StateChanged does not bubble, so anything else would fail silently)."""

from __future__ import annotations

import ast
from pathlib import Path

TUI = Path(__file__).resolve().parents[2] / "tui"
APP_CLASSES = {"DeployDeckApp"}  # handles Worker.StateChanged itself


def workers() -> list[tuple[str, ast.ClassDef, ast.Call]]:
    found = []
    for path in sorted(TUI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for decorator in item.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and getattr(decorator.func, "id", "") == "work"
                    ):
                        where = (
                            f"{path.relative_to(TUI.parent)}:{item.lineno} {node.name}.{item.name}"
                        )
                        found.append((where, node, decorator))
    return found


def test_the_console_has_workers_to_check() -> None:
    assert len(workers()) >= 10


def test_no_worker_failure_ends_the_console() -> None:
    """A worker without exit_on_error=False -> its failure would end the console: refused."""
    ending = [
        where
        for where, _, call in workers()
        if not any(
            k.arg == "exit_on_error"
            and isinstance(k.value, ast.Constant)
            and k.value.value is False
            for k in call.keywords
        )
    ]
    assert ending == []


def test_no_worker_fails_silently() -> None:
    """A worker on a screen or widget without SaysWorkerFailures -> its failure would go unsaid."""
    silent = [
        where
        for where, cls, _ in workers()
        if cls.name not in APP_CLASSES
        and "SaysWorkerFailures" not in {getattr(b, "id", "") for b in cls.bases}
    ]
    assert silent == []


def test_screens_and_widgets_use_only_what_every_textual_app_has() -> None:
    """A screen or widget reading `self.app.<a DeployDeckApp field>` -> refused: what a
    screen needs is handed down (attributes down), what it wants done is posted (messages up)."""
    from textual.app import App

    reaching = []
    for folder in ("screens", "widgets"):
        for path in sorted((TUI / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "app"
                    and getattr(node.value.value, "id", "") == "self"
                    and not hasattr(App, node.attr)
                ):
                    reaching.append(f"{path.relative_to(TUI.parent)}:{node.lineno} app.{node.attr}")
    assert reaching == []
