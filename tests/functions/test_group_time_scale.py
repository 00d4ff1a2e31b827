"""A Lambda group's `target.time_scale`: the scale its deployments run at unless one is asked
for; a bad value is refused naming the group and the key, and nothing is recorded."""

from __future__ import annotations

from pathlib import Path

from .test_lambda_deployments import Workspace, dd


def test_the_groups_time_scale_applies_when_none_is_asked_for(tmp_path: Path) -> None:
    """target.time_scale 30 -> recorded as the deployment's timeScale; --time-scale wins."""
    workspace = Workspace(tmp_path, {"target": {"time_scale": 30}})
    revision = workspace.revision("v2", 1, 2)
    first = workspace.wait(workspace.deploy(revision))
    assert first["status"] == "Succeeded" and first["timeScale"] == 30
    second = workspace.wait(workspace.deploy(revision, "--time-scale", "90"))
    assert second["timeScale"] == 90


def test_a_time_scale_that_is_not_a_positive_number_is_refused(tmp_path: Path) -> None:
    """target.time_scale "fast" -> refused naming fn/live and target.time_scale; no deployment."""
    workspace = Workspace(tmp_path, {"target": {"time_scale": "fast"}})
    result = dd(
        tmp_path,
        "create-deployment",
        "--application-name",
        "fn",
        "--deployment-group-name",
        "live",
        "--revision",
        str(workspace.revision("v2", 1, 2)),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    assert "fn/live" in out and "target.time_scale is 'fast'" in out, out
    listed = dd(tmp_path, "list-deployments", "--output", "json")
    assert '"d-' not in listed.stdout
