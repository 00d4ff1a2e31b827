"""A rollback redeploys the last good revision with the settings of the deployment that
installed it (CodeDeploy: a new deployment of the last known good revision, with that
deployment's settings), not with those of the deployment that failed."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
from tests.engine.fleet import write_workspace
from tests.host.harness import write_tree

# AfterInstall of v2 leaves a file where v1 installs one: no deployment installed it there.
STRAY = """#!/bin/sh
echo "made by hand" > "$DEPLOYDECK_FS_ROOT/srv/app/only-in-v1.txt"
"""
FAIL = "#!/bin/sh\necho 'v2 is broken' >&2\nexit 1\n"


def revision(root: Path, version: str, files: dict[str, str], hooks: dict[str, str]) -> Path:
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": {event: [{"location": f"hooks/{event}.sh"}] for event in hooks},
    }
    tree = {"appspec.yml": yaml.safe_dump(appspec)}
    tree.update({f"site/{name}": text for name, text in files.items()})
    tree.update({f"hooks/{event}.sh": text for event, text in hooks.items()})
    return write_tree(root / version, tree)


async def test_rollback_uses_the_file_exists_behavior_of_the_last_good_deployment(
    tmp_path: Path,
) -> None:
    path = write_workspace(tmp_path, 1, auto_rollback=["DEPLOYMENT_FAILURE"])
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    try:
        v1 = revision(tmp_path, "v1", {"version.txt": "v1\n", "only-in-v1.txt": "v1\n"}, {})
        v2 = revision(
            tmp_path,
            "v2",
            {"version.txt": "v2\n"},
            {"AfterInstall": STRAY, "ValidateService": FAIL},
        )
        good = await engine.create_deployment(
            CreateDeploymentRequest(
                "app", "fleet", revision_path=v1, file_exists_behavior="OVERWRITE"
            )
        )
        assert (await engine.wait(good.id, timeout=120)).status == "Succeeded"
        bad = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=v2)  # the group's DISALLOW
        )
        failed = await engine.wait(bad.id, timeout=120)
        assert failed.status == "Failed"
        rollback = await engine.wait(failed.rollback.rollback_deployment_id, timeout=120)
        assert rollback.status == "Succeeded", [
            (e.name, e.diagnostics) for e in rollback.instances[0].events if e.diagnostics
        ]
        app = tmp_path / ".deploydeck" / "instances" / "i01" / "fs" / "srv" / "app"
        assert (app / "version.txt").read_text() == "v1\n"
        assert (app / "only-in-v1.txt").read_text() == "v1\n"  # overwritten, as v1 was deployed
    finally:
        await engine.aclose()


async def test_a_manual_rollback_uses_them_too(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 1)
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    try:
        v1 = revision(tmp_path, "v1", {"version.txt": "v1\n", "only-in-v1.txt": "v1\n"}, {})
        v2 = revision(tmp_path, "v2", {"version.txt": "v2\n"}, {"AfterInstall": STRAY})
        request = CreateDeploymentRequest(
            "app", "fleet", revision_path=v1, file_exists_behavior="RETAIN"
        )
        assert (
            await engine.wait((await engine.create_deployment(request)).id, 120)
        ).status == "Succeeded"
        second = await engine.create_deployment(
            CreateDeploymentRequest("app", "fleet", revision_path=v2)
        )
        assert (await engine.wait(second.id, timeout=120)).status == "Succeeded"
        manual = await engine.rollback(second.id)
        assert manual is not None
        final = await engine.wait(manual.id, timeout=120)
        assert final.status == "Succeeded"
        app = tmp_path / ".deploydeck" / "instances" / "i01" / "fs" / "srv" / "app"
        assert (app / "version.txt").read_text() == "v1\n"
        assert (app / "only-in-v1.txt").read_text() == "made by hand\n"  # RETAIN, as v1 was
    finally:
        await engine.aclose()
