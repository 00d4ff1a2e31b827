"""A Server group's blue_green: in deploydeck.yml: its defaults, every field, and the errors
(file:line:key and what to write) that refuse a wrong one and load nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.model import BlueInstanceAction, GreenFleetAction, ReadyAction
from engine.workspace import load_workspace
from engine.workspace.model import BlueGreenConfig
from engine.workspace.tags import TagFilter
from tests.host.harness import write_tree

STYLE = {"deployment_type": "BLUE_GREEN", "deployment_option": "WITH_TRAFFIC_CONTROL"}


def workspace(tmp_path: Path, blue_green: Any, style: dict[str, str] = STYLE) -> Path:
    write_tree(tmp_path / "srv", {"keep": ""})
    document = {
        "applications": {
            "app": {
                "deployment_groups": {
                    "fleet": {
                        "tag_filters": [{"key": "role", "value": "web"}],
                        "deployment_style": style,
                        "load_balancer": {"kind": "builtin"},
                        "blue_green": blue_green,
                    }
                }
            }
        },
        "instances": {
            name: {"root": str(tmp_path / name), "tags": tags, "environment": {"PORT": "8001"}}
            for name, tags in (("i01", {"role": "web"}), ("g01", {"fleet": "green"}))
        },
    }
    path = tmp_path / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def errors(path: Path) -> list[str]:
    result = load_workspace(path)
    assert not result.ok and result.workspace is None
    return [str(e) for e in result.errors]


def test_an_empty_section_takes_the_defaults(tmp_path: Path) -> None:
    group = load_workspace(workspace(tmp_path, {})).unwrap().group("app", "fleet")
    assert group.blue_green == BlueGreenConfig()
    assert group.blue_green.green_fleet == GreenFleetAction.COPY_AUTO_SCALING_GROUP
    assert not group.blue_green.waits_ready


def test_every_field_is_read(tmp_path: Path) -> None:
    section = {
        "deployment_ready_option": {
            "action_on_timeout": "STOP_DEPLOYMENT",
            "wait_time_in_minutes": 45,
        },
        "green_fleet_provisioning_option": {
            "action": "DISCOVER_EXISTING",
            "tag_filters": [{"key": "fleet", "value": "green"}],
        },
        "terminate_blue_instances_on_deployment_success": {
            "action": "KEEP_ALIVE",
            "termination_wait_time_in_minutes": 0.5,
        },
    }
    group = load_workspace(workspace(tmp_path, section)).unwrap().group("app", "fleet")
    assert group.blue_green == BlueGreenConfig(
        ReadyAction.STOP_DEPLOYMENT,
        45.0,
        GreenFleetAction.DISCOVER_EXISTING,
        (TagFilter("fleet", "green", "KEY_AND_VALUE"),),
        None,
        BlueInstanceAction.KEEP_ALIVE,
        0.5,
    )


@pytest.mark.parametrize(
    "section, where, says, hint",
    [
        (
            {"deployment_ready_option": {"action_on_timeout": "STOP"}},
            "blue_green.deployment_ready_option.action_on_timeout",
            "action_on_timeout must be one of CONTINUE_DEPLOYMENT, STOP_DEPLOYMENT",
            "write one of: CONTINUE_DEPLOYMENT, STOP_DEPLOYMENT",
        ),
        (
            {"deployment_ready_option": {"action_on_timeout": "STOP_DEPLOYMENT"}},
            "blue_green.deployment_ready_option.wait_time_in_minutes",
            "STOP_DEPLOYMENT waits in status Ready",
            "write wait_time_in_minutes: 60",
        ),
        (
            {"deployment_ready_option": {"wait_time_in_minutes": 3000}},
            "blue_green.deployment_ready_option.wait_time_in_minutes",
            "at most 2880",
            "write wait_time_in_minutes: 60",
        ),
        (
            {"green_fleet_provisioning_option": {"action": "DISCOVER_EXISTING"}},
            "blue_green.green_fleet_provisioning_option.tag_filters",
            "DISCOVER_EXISTING takes green from existing instances chosen by tags",
            "write tag_filters: [{key: fleet, value: green}]",
        ),
        (
            {
                "green_fleet_provisioning_option": {
                    "tag_filters": [{"key": "fleet", "value": "green"}]
                }
            },
            "blue_green.green_fleet_provisioning_option.tag_filters",
            "COPY_AUTO_SCALING_GROUP makes green as copies",
            "write action: DISCOVER_EXISTING",
        ),
        (
            {
                "green_fleet_provisioning_option": {
                    "action": "DISCOVER_EXISTING",
                    "tag_filters": [{"key": "role", "value": "web"}],
                }
            },
            "blue_green.green_fleet_provisioning_option.tag_filters",
            "instance(s) i01 match both the group's tags (blue) and the green fleet's",
            "give green instances a tag the group's tag_filters do not select",
        ),
        (
            {"green_fleet_provisioning_option": {"first_port": 70000}},
            "blue_green.green_fleet_provisioning_option.first_port",
            "first_port must be from 1 to 65535",
            "write first_port: 9100",
        ),
        (
            {"terminate_blue_instances_on_deployment_success": {"action": "KILL"}},
            "blue_green.terminate_blue_instances_on_deployment_success.action",
            "action must be one of TERMINATE, KEEP_ALIVE",
            "write one of: TERMINATE, KEEP_ALIVE",
        ),
        (
            "COPY",
            "blue_green",
            "blue_green must be a mapping",
            "write blue_green: {green_fleet_provisioning_option:",
        ),
    ],
    ids=[
        "ready-action",
        "stop-without-wait",
        "wait-too-long",
        "discover-without-tags",
        "copy-with-tags",
        "green-is-blue",
        "port",
        "blue-action",
        "not-a-mapping",
    ],
)
def test_a_wrong_value_is_an_error_naming_its_line_and_key(
    tmp_path: Path, section: Any, where: str, says: str, hint: str
) -> None:
    (error,) = errors(workspace(tmp_path, section))
    assert "deploydeck.yml:" in error
    assert f"applications.app.deployment_groups.fleet.{where}" in error
    assert says in error
    assert hint in error


def test_blue_green_on_an_in_place_group_is_ignored_with_a_warning(tmp_path: Path) -> None:
    result = load_workspace(workspace(tmp_path, {}, {"deployment_type": "IN_PLACE"}))
    assert result.ok
    (warning,) = [w for w in result.warnings if "blue_green" in w.message]
    assert "read only for a Server group with deployment_type BLUE_GREEN" in warning.message
    assert result.unwrap().group("app", "fleet").blue_green is None
