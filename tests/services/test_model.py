"""Task definitions (frozen, numbered revisions), the service's values, and the state files a
CLI reads: each bad value is one clear error naming what is wrong."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from engine.services import (
    Service,
    ServiceError,
    TaskDefinition,
    TaskDefinitions,
    load_service_state,
)
from engine.services.state import write_json


def test_registering_a_family_again_makes_its_next_frozen_revision(tmp_path: Path) -> None:
    defs = TaskDefinitions(tmp_path)
    first = defs.register("web", [sys.executable, "app.py"], environment={"MODE": "a"})
    second = defs.register("web", [sys.executable, "app.py"], desired_count=3)
    other = defs.register("worker", ["./run"])
    assert (first.arn, second.arn, other.arn) == ("web:1", "web:2", "worker:1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.desired_count = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.environment["MODE"] = "b"  # type: ignore[index]
    again = TaskDefinitions(tmp_path)  # a CLI reading the same folder
    assert again.get("web", 1) == first and again.get("web") == second
    assert json.loads((tmp_path / "task-definitions.json").read_text())["web"][0][
        "environment"
    ] == {"MODE": "a"}
    with pytest.raises(ServiceError, match="revisions 1 to 2, not 3"):
        again.get("web", 3)
    with pytest.raises(ServiceError, match=r"no task definition family 'api' .*web, worker"):
        again.get("api")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"family": "my app"}, "task definition family name 'my app'"),
        ({"revision": 0}, "revision must be 1 or more"),
        ({"command": ()}, "command must be a non-empty list"),
        ({"command": ("python", "")}, "command must be a non-empty list"),
        ({"desired_count": 0}, "desired_count must be a whole number from 1 to 1000, not 0"),
        ({"desired_count": 2.0}, "desired_count must be a whole number"),
        ({"container_port": 70000}, "container_port 70000 must be a port number"),
        ({"health_check_path": "healthz"}, "health_check_path 'healthz' must start with /"),
        ({"environment": {"1X": "a"}}, "environment name '1X'"),
        ({"environment": {"X": 1}}, "environment X must be a string"),
        ({"port_variable": "MY-PORT"}, "port_variable 'MY-PORT'"),
    ],
)
def test_a_bad_task_definition_is_one_clear_error(changes: dict, words: str) -> None:
    values = {"family": "web", "revision": 1, "command": ("python", "app.py")} | changes
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        TaskDefinition(**values)


def test_a_service_needs_a_name_and_distinct_listener_ports() -> None:
    assert Service("web").target_groups == ("web-tg-1", "web-tg-2")
    with pytest.raises(ValueError, match="service name 'web/1'"):
        Service("web/1")
    with pytest.raises(ValueError, match="the test listener needs its own port, not 8080"):
        Service("web", production_port=8080, test_port=8080)
    with pytest.raises(ValueError, match="production_port 99999"):
        Service("web", production_port=99999)


def test_reading_state_that_is_missing_or_damaged_names_the_file_and_what_to_do(
    tmp_path: Path,
) -> None:
    path = tmp_path / "service.json"
    with pytest.raises(ServiceError, match=f"{path}: no service state there; start the service"):
        load_service_state(tmp_path)
    path.write_text('{"service": "web",')
    with pytest.raises(ServiceError, match=f"{path}: not valid JSON"):
        load_service_state(tmp_path)
    write_json(path, {"service": "web"})
    with pytest.raises(ServiceError, match=r"not a service state deploydeck wrote .*remove it"):
        load_service_state(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["service.json"]  # no temporary file left
