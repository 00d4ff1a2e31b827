"""find_workspace: an explicit file or folder, else deploydeck.yml where the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workspace import WorkspaceError, WorkspaceNotFoundError, find_workspace


def make(folder: Path, name: str = "deploydeck.yml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("instances: {}\n")
    return path


def test_the_file_in_the_start_folder(tmp_path: Path) -> None:
    path = make(tmp_path)
    assert find_workspace(tmp_path, None) == path


def test_an_explicit_file_wins(tmp_path: Path) -> None:
    make(tmp_path)
    other = make(tmp_path / "elsewhere", "staging.yml")
    assert find_workspace(tmp_path, other) == other


def test_an_explicit_folder_holding_the_file(tmp_path: Path) -> None:
    inside = make(tmp_path / "demo")
    assert find_workspace(tmp_path / "nowhere", tmp_path / "demo") == inside


def test_a_relative_explicit_path_is_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = make(tmp_path / "demo")
    monkeypatch.chdir(tmp_path)
    found = find_workspace(tmp_path / "other", Path("demo"))
    assert found == inside and found.is_absolute()


def test_no_file_says_where_it_looked_and_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError) as raised:
        find_workspace(tmp_path, None)
    message = str(raised.value)
    assert f"no deploydeck.yml in {tmp_path}" in message and "deploydeck init" in message
    assert isinstance(raised.value, WorkspaceError)


def test_an_explicit_folder_without_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkspaceNotFoundError, match=r"no deploydeck.yml in .*empty.*init"):
        find_workspace(tmp_path, tmp_path / "empty")


def test_an_explicit_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError, match=r"missing.yml: it does not exist.*init"):
        find_workspace(tmp_path, tmp_path / "missing.yml")


def test_a_yaml_spelling_is_pointed_out(tmp_path: Path) -> None:
    make(tmp_path, "deploydeck.yaml")
    with pytest.raises(WorkspaceNotFoundError, match=r"found deploydeck\.yaml: rename it"):
        find_workspace(tmp_path, None)
