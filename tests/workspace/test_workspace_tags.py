"""Which instances a deployment group targets: the three filter types, OR within tag_filters and
within a tag group, AND across tag groups, workspace order
(docs/codedeploy-service.md#deployment-groups)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workspace import TagFilter, Workspace
from tests.workspace.support import load, marked_line, only_error

INSTANCES = """
instances:
  a: {tags: {role: web, env: prod}}
  b: {tags: {role: db, env: prod}}
  c: {tags: {role: web, env: staging, canary: ""}}
  d: {tags: {tier: prod}}
  e: {}
"""


def targets(tmp_path: Path, selector: str) -> list[str]:
    """The instance names a group with `selector` (YAML under the group) selects."""
    body = "\n".join("        " + line for line in selector.strip("\n").splitlines())
    text = f"applications:\n  app:\n    deployment_groups:\n      g:\n{body}\n" + INSTANCES
    result = load(tmp_path, text)
    assert not result.errors, [str(d) for d in result.errors]
    ws: Workspace = result.unwrap()
    return [i.name for i in ws.group_instances("app", "g")]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        # KEY_AND_VALUE: the exact pair.
        ("tag_filters: [{key: role, value: web, type: KEY_AND_VALUE}]", ["a", "c"]),
        ("tag_filters: [{key: env, value: prod}]", ["a", "b"]),
        # KEY_ONLY: having the key, whatever the value (even an empty one).
        ("tag_filters: [{key: canary, type: KEY_ONLY}]", ["c"]),
        ("tag_filters: [{key: env}]", ["a", "b", "c"]),
        # VALUE_ONLY: any key with that value.
        ("tag_filters: [{value: prod, type: VALUE_ONLY}]", ["a", "b", "d"]),
        ("tag_filters: [{value: staging}]", ["c"]),
        # Tags are case-sensitive.
        ("tag_filters: [{key: Role, value: web}]", []),
        ("tag_filters: [{key: role, value: WEB}]", []),
    ],
)
def test_the_three_filter_types(tmp_path: Path, selector: str, expected: list[str]) -> None:
    assert targets(tmp_path, selector) == expected


def test_the_type_defaults_to_what_is_written() -> None:
    from engine.workspace.tags import default_type

    assert default_type("role", "web") == "KEY_AND_VALUE"
    assert default_type("role", None) == "KEY_ONLY"
    assert default_type(None, "web") == "VALUE_ONLY"


def test_tag_filters_match_any_filter_in_workspace_order(tmp_path: Path) -> None:
    selector = """
tag_filters:
  - {key: tier}
  - {key: role, value: db}
  - {key: role, value: web}
"""
    assert targets(tmp_path, selector) == ["a", "b", "c", "d"]


def test_tag_set_is_or_within_a_group_and_across_groups(tmp_path: Path) -> None:
    both = """
tag_set:
  - - {key: role, value: web}
  - - {key: env, value: prod}
"""
    assert targets(tmp_path, both) == ["a"]
    either_env = """
tag_set:
  - - {key: role, value: web}
  - - {key: env, value: prod}
    - {key: env, value: staging}
"""
    assert targets(tmp_path, either_env) == ["a", "c"]
    three = """
tag_set:
  - - {key: role, value: web}
    - {key: role, value: db}
  - - {value: prod}
  - - {key: role}
"""
    assert targets(tmp_path, three) == ["a", "b"]


def test_a_single_tag_group_behaves_like_tag_filters(tmp_path: Path) -> None:
    assert targets(tmp_path, "tag_set: [[{key: role, value: db}, {key: tier}]]") == ["b", "d"]


def test_tag_filter_matching_directly() -> None:
    tags = {"role": "web", "env": ""}
    assert TagFilter("env", None, "KEY_ONLY").matches(tags)
    assert TagFilter(None, "", "VALUE_ONLY").matches(tags)
    assert TagFilter("env", "", "KEY_AND_VALUE").matches(tags)
    assert not TagFilter("web", None, "KEY_ONLY").matches(tags)
    assert not TagFilter(None, "role", "VALUE_ONLY").matches(tags)
    assert not TagFilter("missing", "", "KEY_AND_VALUE").matches(tags)
    assert [str(TagFilter("r", "w", "KEY_AND_VALUE")), str(TagFilter("r", None, "KEY_ONLY"))] == [
        "r=w",
        "r=*",
    ]


def test_at_most_three_tag_groups(tmp_path: Path) -> None:
    three = "tag_set: [[{key: role}], [{key: env}], [{value: prod}]]"
    assert targets(tmp_path, three) == ["a", "b"]
    text = """
applications:
  app:
    deployment_groups:
      g:
        tag_set:
          - [{key: role}]
          - [{key: env}]
          - [{value: prod}]
          - [{key: tier}]   #<
"""
    error = only_error(load(tmp_path, text + INSTANCES))
    assert error.line == marked_line(text)
    assert error.key == "applications.app.deployment_groups.g.tag_set[3]"
    assert "at most 3 tag groups" in error.message and error.hint


def test_tag_filters_and_tag_set_cannot_be_mixed(tmp_path: Path) -> None:
    text = """
applications:
  app:
    deployment_groups:
      g:
        tag_filters: [{key: role, value: web}]
        tag_set:   #<
          - - {key: env, value: prod}
"""
    error = only_error(load(tmp_path, text + INSTANCES))
    assert error.line == marked_line(text)
    assert error.key == "applications.app.deployment_groups.g.tag_set"
    assert "cannot be combined" in error.message
    assert "tag_set" in error.hint


def test_lambda_and_ecs_groups_take_no_tag_filters(tmp_path: Path) -> None:
    for platform in ("Lambda", "ECS"):
        text = f"""
applications:
  fn:
    compute_platform: {platform}
    deployment_groups:
      live:
        tag_filters: [{{key: role}}]   #<
"""
        error = only_error(load(tmp_path, text + INSTANCES))
        assert error.line == marked_line(text)
        assert error.key == "applications.fn.deployment_groups.live.tag_filters"
        assert f"a {platform} deployment group selects no instances" in error.message


def test_a_key_only_filter_ignores_a_value_with_a_warning(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        "applications:\n  app:\n    deployment_groups:\n      g:\n"
        "        tag_filters: [{key: env, value: nope, type: KEY_ONLY}]\n" + INSTANCES,
    )
    assert result.ok
    (warning,) = result.warnings
    assert warning.key.endswith("tag_filters[0].value") and "ignores" in warning.message
    assert [i.name for i in result.unwrap().group_instances("app", "g")] == ["a", "b", "c"]
