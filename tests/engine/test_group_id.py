"""DEPLOYMENT_GROUP_ID is `<application>.<group>`: a group removed from deploydeck.yml and
written back under the same name is the same group, so its next Install replays the cleanup
file of the last one and finds no stray files (docs/workspace.md says why); a renamed group is
a new group, as in CodeDeploy."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
from tests.engine.fleet import write_workspace
from tests.host.harness import write_tree

HOOK = '#!/bin/sh\necho "$DEPLOYMENT_GROUP_ID" > "$DEPLOYDECK_FS_ROOT/group-id"\n'


def revision(root: Path, version: str) -> Path:
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": {"AfterInstall": [{"location": "hooks/after.sh"}]},
    }
    return write_tree(
        root / version,
        {
            "appspec.yml": yaml.safe_dump(appspec),
            "site/index.html": f"{version}\n",
            "hooks/after.sh": HOOK,
        },
    )


async def deploy(path: Path, group: str, source: Path) -> str:
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    try:
        created = await engine.create_deployment(
            CreateDeploymentRequest("app", group, revision_path=source)
        )
        return (await engine.wait(created.id, timeout=120)).status
    finally:
        await engine.aclose()


def groups(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["applications"]["app"]["deployment_groups"]


def set_groups(path: Path, groups: dict) -> None:
    document = yaml.safe_load(path.read_text())
    document["applications"]["app"]["deployment_groups"] = groups
    path.write_text(yaml.safe_dump(document))


async def test_a_group_written_back_under_its_name_keeps_its_id_and_cleanup(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 1)
    instance = tmp_path / ".deploydeck" / "instances" / "i01" / "fs"
    assert await deploy(path, "fleet", revision(tmp_path, "v1")) == "Succeeded"
    assert (instance / "group-id").read_text() == "app.fleet\n"
    fleet = groups(path)["fleet"]
    set_groups(path, {"other": {"tag_filters": [{"key": "role", "value": "db"}]}})  # deleted ...
    assert await deploy(path, "other", revision(tmp_path, "v1")) == "Failed"  # no instances
    set_groups(path, {"fleet": fleet})  # ... and created again with the same name
    assert await deploy(path, "fleet", revision(tmp_path, "v2")) == "Succeeded"  # DISALLOW
    assert (instance / "srv" / "app" / "index.html").read_text() == "v2\n"
    assert (instance / "group-id").read_text() == "app.fleet\n"


async def test_a_renamed_group_is_a_new_group(tmp_path: Path) -> None:
    path = write_workspace(tmp_path, 1)
    instance = tmp_path / ".deploydeck" / "instances" / "i01" / "fs"
    assert await deploy(path, "fleet", revision(tmp_path, "v1")) == "Succeeded"
    set_groups(path, {"web": groups(path)["fleet"]})
    # v1's files were installed by another group: in the way, as CodeDeploy finds them.
    assert await deploy(path, "web", revision(tmp_path, "v2")) == "Failed"
    assert (instance / "srv" / "app" / "index.html").read_text() == "v1\n"
