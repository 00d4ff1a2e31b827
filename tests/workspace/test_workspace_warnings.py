"""Warnings: the workspace loads, but something is probably not what was meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.appspec.diagnostics import Diagnostic
from tests.workspace.support import load, marked_line

BASE = """
applications:
  web:
    deployment_groups:
      fleet:
        tag_filters: [{key: role, value: web}]
instances:
  web-1: {tags: {role: web}}
"""


def only_warning(tmp_path: Path, text: str) -> Diagnostic:
    result = load(tmp_path, text)
    assert result.ok, [str(d) for d in result.errors]
    assert len(result.warnings) == 1, [str(d) for d in result.warnings]
    warning = result.warnings[0]
    assert warning.line == marked_line(text), str(warning)
    assert warning.hint
    return warning


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (BASE + "instance:  #<\n", "instance", "did you mean `instances`?"),
        (BASE + "settings:\n  max_revision: 3  #<\n", "settings.max_revision", "`max_revisions`"),
        (
            BASE.replace("        tag_filters", "        tag_filter: []  #<\n        tag_filters"),
            "applications.web.deployment_groups.fleet.tag_filter",
            "`tag_filters`",
        ),
        (
            BASE + "  web-2:\n    tags: {role: web}\n    envirnoment: {A: b}  #<\n",
            "instances.web-2.envirnoment",
            "`environment`",
        ),
        (
            BASE.replace("applications:\n  web:\n", "applications:\n  web:\n    platform: x  #<\n"),
            "applications.web.platform",
            "`compute_platform`",
        ),
        (
            BASE + "  web-2:\n    tags: {role: web}\n    environment:\n"
            "      A: {value: b, secrt: true}  #<\n",
            "instances.web-2.environment.A.secrt",
            "`secret`",
        ),
        (
            BASE + "deployment_configs:\n  Most:\n"
            "    minimum_healthy_host: {type: HOST_COUNT, value: 1}  #<\n"
            "    minimum_healthy_hosts: {type: HOST_COUNT, value: 1}\n",
            "deployment_configs.Most.minimum_healthy_host",
            "`minimum_healthy_hosts`",
        ),
    ],
)
def test_unknown_keys_warn_with_the_closest_valid_key(
    tmp_path: Path, text: str, key: str, suggestion: str
) -> None:
    warning = only_warning(tmp_path, text)
    assert warning.key == key
    assert "unknown key" in warning.message
    assert suggestion in warning.hint


def test_a_group_matching_no_instance_warns_no_instances(tmp_path: Path) -> None:
    text = BASE.replace("      fleet:\n", "      fleet:  #<\n").replace(
        "value: web}]", "value: api}]"
    )
    warning = only_warning(tmp_path, text)
    assert warning.key == "applications.web.deployment_groups.fleet"
    assert "matches no instance" in warning.message and "NO_INSTANCES" in warning.message
    assert "role=api" in warning.hint


def test_a_group_without_filters_matches_nothing_and_says_how_to_select(tmp_path: Path) -> None:
    text = BASE.replace("instances:", "      empty: {}  #<\ninstances:")
    warning = only_warning(tmp_path, text)
    assert warning.key == "applications.web.deployment_groups.empty"
    assert "tag_filters" in warning.hint
    ws = load(tmp_path, text).unwrap()
    assert ws.group_instances("web", "empty") == ()


def test_lambda_groups_never_warn_about_instances(tmp_path: Path) -> None:
    lambda_app = "  fn:\n    compute_platform: Lambda\n    deployment_groups:\n      live: {}\n"
    result = load(tmp_path, BASE.replace("instances:", lambda_app + "instances:"))
    assert result.ok and result.warnings == ()


def test_an_instance_written_twice_warns_and_the_later_one_is_used(tmp_path: Path) -> None:
    text = BASE + "  web-1: {tags: {role: web, v: '2'}}  #<\n"
    warning = only_warning(tmp_path, text)
    assert "duplicate key 'web-1'" in warning.message
    assert warning.key == "instances.web-1"
    assert load(tmp_path, text).unwrap().instances["web-1"].tags == {"role": "web", "v": "2"}


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        (
            BASE + "  web-2:\n    tags: {role: web}\n    environment:\n"
            "      DEPLOYMENT_ID: x  #<\n",
            "set by the agent",
        ),
        (
            BASE.replace("        tag_filters", "        target: {a: 1}  #<\n        tag_filters"),
            "only for Lambda and ECS",
        ),
        (
            BASE.replace(
                "        tag_filters",
                "        auto_rollback:\n"
                "          events: [DEPLOYMENT_FAILURE, DEPLOYMENT_FAILURE]  #<\n"
                "        tag_filters",
            ),
            "listed twice",
        ),
    ],
)
def test_other_warnings(tmp_path: Path, text: str, piece: str) -> None:
    assert piece in only_warning(tmp_path, text).message


def test_a_workspace_without_applications_warns(tmp_path: Path) -> None:
    result = load(tmp_path, "instances:\n  web-1: {}\n")
    assert result.ok
    (warning,) = result.warnings
    assert warning.key == "applications" and "nothing to deploy" in warning.message
