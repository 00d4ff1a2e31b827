"""Property: whatever deploydeck.yml holds, loading it gives a workspace or positioned
diagnostics with a hint, and never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.workspace import WorkspaceResult, parse_workspace
from tests.fuzz import FAST, dump, keys_like, maybe_damaged, mutate, values_with
from tests.workspace.test_workspace_docs import SECRET, full_example

PATH = Path("/nonexistent/deploydeck.yml")
ENVIRON = {"WEB1_DB_PASSWORD": SECRET}
BASE: dict[str, Any] = yaml.safe_load(full_example())
KEYS = keys_like(
    [
        "version",
        "applications",
        "deployment_groups",
        "instances",
        "configs",
        "tags",
        "transport",
        "ssh",
        "root",
        "env",
        "tag_filters",
        "tag_sets",
        "minimum_healthy_hosts",
        "auto_rollback",
        "triggers",
    ]
)
VALUES = values_with(KEYS)


def check(result: WorkspaceResult) -> None:
    assert isinstance(result, WorkspaceResult)
    for diagnostic in result.diagnostics:
        assert diagnostic.severity in ("error", "warning")
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert diagnostic.hint, str(diagnostic)  # every finding says what to write instead
        assert SECRET not in str(diagnostic)
    assert (result.workspace is None) == bool(result.errors)


def test_the_base_is_valid() -> None:
    result = parse_workspace(dump(BASE), PATH, environ=ENVIRON)
    assert result.ok, "\n".join(str(d) for d in result.diagnostics)


@FAST
@given(st.integers(1, 3), st.data())
def test_mutated_workspaces_never_raise(rounds: int, data: st.DataObject) -> None:
    doc: Any = BASE
    for _ in range(rounds):
        doc = mutate(doc, data, KEYS, VALUES)
    check(parse_workspace(maybe_damaged(dump(doc), data), PATH, environ=ENVIRON))


@FAST
@given(VALUES)
def test_random_yaml_documents_never_raise(doc: object) -> None:
    check(parse_workspace(dump(doc), PATH, environ=ENVIRON))
