"""Export SVG screenshots of the console's main screens, taken by the app itself.

`python -m tui.screenshots docs/screenshots` builds a fresh demo workspace in a temporary
folder, runs real deployments on it (web-v1; web-broken, which fails and rolls back; a
deployment stopped midway), then opens each screen and saves it with `App.save_screenshot`.
The temporary workspace and the web servers its deployments started are removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

SIZE = (150, 42)


async def _wait(pilot, condition, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise TimeoutError("screen did not reach the expected state")
        await pilot.pause(0.1)


async def take(workspace_path: Path, out: Path) -> list[Path]:
    from engine.api import CreateDeploymentRequest
    from engine.workspace import load_workspace
    from tui.app import DeployDeckApp
    from tui.demo import SAMPLES
    from tui.screens.deployment import DeploymentScreen

    app = DeployDeckApp(load_workspace(workspace_path).unwrap())
    saved: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        saved.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    async with app.run_test(size=SIZE) as pilot:
        engine = app.engine
        for revision in ("web-v1", "web-broken"):
            created = await engine.create_deployment(
                CreateDeploymentRequest("web", "fleet", revision_path=SAMPLES / revision)
            )
            final = await engine.wait(created.id, timeout=300)
            if final.rollback.rollback_deployment_id:
                await engine.wait(final.rollback.rollback_deployment_id, timeout=300)
            failed_id = final.id
        await pilot.pause(1.0)
        app.refresh_dashboard()
        await pilot.pause(0.5)
        shot("dashboard")

        await pilot.press("n")
        await _wait(pilot, lambda: getattr(app.screen, "preview", None) is not None)
        await pilot.pause(0.3)
        shot("new-deployment")
        await pilot.press("escape")

        app.open_deployment(failed_id)
        await pilot.pause(0.5)
        shot("failed-deployment")
        await pilot.press("escape")

        created = await engine.create_deployment(
            CreateDeploymentRequest("web", "fleet", revision_path=SAMPLES / "web-v2")
        )
        app.open_deployment(created.id)
        screen = app.screen
        assert isinstance(screen, DeploymentScreen)
        await _wait(pilot, lambda: screen.view is not None and len(screen.view.batches) >= 1)
        await pilot.pause(1.5)
        shot("running-deployment")
        await pilot.press("S")
        await pilot.pause(0.3)
        shot("stop-confirmation")
        await pilot.press("n")
        await engine.wait(created.id, timeout=300)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        shot("help")
    return saved


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshots")
    home = Path(tempfile.mkdtemp(prefix="deploydeck-shots-"))
    os.environ["DEPLOYDECK_DEMO_HOME"] = str(home)
    from tui.demo import end_demo_processes, ensure_demo_workspace

    try:
        workspace_path = ensure_demo_workspace()  # runs its own first deployments
        for path in asyncio.run(take(workspace_path, out)):
            print(path)
    finally:
        end_demo_processes(home)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
