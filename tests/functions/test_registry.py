"""The function registry: versions frozen by content, aliases validated, files written whole."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.functions import (
    FunctionGateway,
    FunctionRegistry,
    NotFound,
    RecentCounts,
    RegistryError,
    SmoothWeightedRoundRobin,
)

from .conftest import write_python_function


def test_publish_freezes_code_into_numbered_versions(registry, tmp_path):
    code = write_python_function(tmp_path / "code", "v1")
    registry.create("hello", code, [sys.executable, "worker.py"])
    assert registry.publish_version("hello") == "1"
    assert registry.publish_version("hello") == "1"  # nothing changed: the same version
    (code / "VERSION").write_text("v2\n")
    assert registry.publish_version("hello") == "2"
    (code / "VERSION").write_text("v3 unpublished\n")
    function = registry.get("hello")
    one = function.spec("1", registry.store)
    two = function.spec("2", registry.store)
    assert (one.code / "VERSION").read_text() == "v1\n"
    assert (two.code / "VERSION").read_text() == "v2\n"
    assert one.code.parent == registry.store and one.code.name == one.code_sha256
    assert function.spec("$LATEST", registry.store).code == code.resolve()


def test_a_version_keeps_the_settings_it_was_published_with(registry, tmp_path):
    code = write_python_function(tmp_path / "code")
    registry.create("hello", code, "python3 worker.py", timeout=5, environment={"A": "1"})
    registry.publish_version("hello")
    registry.create("hello", code, "python3 worker.py", timeout=9, environment={"A": "2"})
    assert registry.publish_version("hello") == "2"  # settings changed: a new version
    function = registry.get("hello")
    assert function.spec("1", registry.store).timeout == 5
    assert function.spec("1", registry.store).environment == {"A": "1"}
    assert function.spec("2", registry.store).timeout == 9


def test_aliases_point_at_one_or_two_published_versions(registry, tmp_path):
    code = write_python_function(tmp_path / "code")
    registry.create("hello", code, "python3 worker.py")
    registry.publish_version("hello")
    (code / "VERSION").write_text("v2\n")
    registry.publish_version("hello")
    alias = registry.set_alias("hello", "live", "1", {"2": 0.25})
    assert alias.weights() == {"1": 0.75, "2": 0.25}
    # another process (a CLI) sees the same alias through the files
    again = FunctionRegistry(registry.root.parent).get("hello").aliases["live"]
    assert again == alias


@pytest.mark.parametrize(
    ("version", "additional", "message"),
    [
        ("3", None, "has no version 3; publish it first"),
        ("1", {"2": 1.5}, "must be 0.0 to 1.0"),
        ("1", {"1": 0.5}, "is the primary version"),
        ("$LATEST", {"2": 0.5}, "needs published versions"),
    ],
)
def test_bad_aliases_are_refused_and_change_nothing(
    registry, tmp_path, version, additional, message
):
    code = write_python_function(tmp_path / "code")
    registry.create("hello", code, "python3 worker.py")
    registry.publish_version("hello")
    (code / "VERSION").write_text("v2\n")
    registry.publish_version("hello")
    registry.set_alias("hello", "live", "1")
    before = (registry.root / "hello" / "function.json").read_text()
    with pytest.raises(RegistryError, match=message):
        registry.set_alias("hello", "live", version, additional)
    assert (registry.root / "hello" / "function.json").read_text() == before


def test_bad_names_and_settings_are_refused(registry, tmp_path):
    code = write_python_function(tmp_path / "code")
    with pytest.raises(RegistryError, match="function name 'bad name'"):
        registry.create("bad name", code, "python3 worker.py")
    with pytest.raises(RegistryError, match="does not exist or is not a folder"):
        registry.create("hello", tmp_path / "missing", "python3 worker.py")
    with pytest.raises(RegistryError, match="timeout"):
        registry.create("hello", code, "python3 worker.py", timeout=0)
    with pytest.raises(RegistryError, match="command"):
        registry.create("hello", code, "")
    registry.create("hello", code, "python3 worker.py")
    with pytest.raises(RegistryError, match="not only digits"):
        registry.set_alias("hello", "123", "$LATEST")
    with pytest.raises(NotFound, match="create it first"):
        registry.get("other")
    assert registry.names() == ["hello"]


def test_registry_files_are_plain_json_with_no_temporaries_left(registry, tmp_path):
    code = write_python_function(tmp_path / "code")
    registry.create("hello", code, "python3 worker.py")
    registry.publish_version("hello")
    registry.set_alias("hello", "live", "1")
    folder = registry.root / "hello"
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "function.json"]
    assert [p.name for p in registry.root.iterdir() if p.name.startswith(".")] == []
    data = json.loads((folder / "function.json").read_text())
    assert data["aliases"] == {"live": {"version": "1", "additional": {}}}
    assert [p.name for p in registry.store.iterdir() if p.name.startswith(".")] == []


def test_a_corrupt_registry_file_is_named_in_the_error(registry, tmp_path):
    code = write_python_function(tmp_path / "code")
    registry.create("hello", code, "python3 worker.py")
    path: Path = registry.root / "hello" / "function.json"
    path.write_text("{broken")
    with pytest.raises(RegistryError, match=re.escape(str(path))):
        registry.get("hello")


def test_smooth_weighted_round_robin_is_exact_and_spread():
    swrr = SmoothWeightedRoundRobin({"1": 0.9, "2": 0.1})
    picks = [swrr.pick() for _ in range(20)]
    assert picks.count("2") == 2 and picks.index("2") != picks.index("2", picks.index("2") + 1) - 1
    thirds = SmoothWeightedRoundRobin({"a": 1, "b": 1, "c": 1})
    assert [thirds.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    with pytest.raises(ValueError):
        SmoothWeightedRoundRobin({"1": 0})


async def test_recent_counts_forget_calls_older_than_the_window():
    clock = ManualClock()
    recent = RecentCounts(clock, window=60)
    recent.record("1")
    await clock.advance(30)
    recent.record("2")
    recent.record("2")
    assert recent.counts() == {"1": 1, "2": 2}
    await clock.advance(31)
    assert recent.counts() == {"2": 2}
    assert recent.shares() == {"2": 1.0}


async def test_a_running_gateway_is_found_through_the_state_folder(registry):
    assert registry.gateway_url() is None
    async with FunctionGateway(registry) as gateway:
        assert FunctionRegistry(registry.root.parent).gateway_url() == gateway.url
    assert registry.gateway_url() is None


async def test_a_second_gateway_leaves_the_running_ones_note_alone(registry):
    """A deployment's own gateway starting and ending beside a long-lived one (the demo's)
    leaves `deploydeck invoke` pointed at the long-lived one."""
    async with FunctionGateway(registry) as lasting:
        async with FunctionGateway(registry) as passing:
            assert passing.url != lasting.url
            assert registry.gateway_url() == lasting.url
        assert registry.gateway_url() == lasting.url
    assert registry.gateway_url() is None
