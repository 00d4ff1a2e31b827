"""A deployment group's load_balancer: in deploydeck.yml: its kinds and defaults, and the
errors (file:line:key and what to write) that refuse a wrong one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.workspace import load_workspace
from engine.workspace.model import HealthCheckConfig, LoadBalancerConfig
from tests.host.harness import write_tree

TRAFFIC = {"deployment_option": "WITH_TRAFFIC_CONTROL"}


def workspace(tmp_path: Path, **group: Any) -> Path:
    write_tree(tmp_path / "srv", {"keep": ""})
    document = {
        "applications": {
            "app": {
                "deployment_groups": {
                    "fleet": {"tag_filters": [{"key": "role", "value": "web"}], **group}
                }
            }
        },
        "instances": {
            "i01": {
                "root": str(tmp_path / "srv"),
                "tags": {"role": "web"},
                "environment": {"PORT": "8001"},
            }
        },
    }
    path = tmp_path / "deploydeck.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def errors(path: Path) -> list[str]:
    result = load_workspace(path)
    assert not result.ok
    return [str(e) for e in result.errors]


def test_a_builtin_balancer_takes_codedeploy_like_defaults(tmp_path: Path) -> None:
    path = workspace(tmp_path, deployment_style=TRAFFIC, load_balancer={"kind": "builtin"})
    group = load_workspace(path).unwrap().group("app", "fleet")
    assert group.load_balancer == LoadBalancerConfig("builtin")
    assert group.load_balancer.health_check == HealthCheckConfig("/", 30.0, 5.0, 5, 2)
    assert group.load_balancer.deregistration_delay_seconds == 300.0
    assert group.load_balancer.allow_timeout_seconds == 3600.0
    assert group.load_balancer.port_env == "PORT"


def test_every_field_is_read(tmp_path: Path) -> None:
    balancer = {
        "kind": "haproxy",
        "socket": "run/admin.sock",
        "backend": "web",
        "servers": {"i01": "web1"},
        "port_env": "WEB_PORT",
        "health_check": {"path": "/healthz", "interval_seconds": 2, "healthy_threshold": 2},
        "deregistration_delay_seconds": 0,
        "allow_timeout_seconds": 60,
    }
    path = workspace(tmp_path, deployment_style=TRAFFIC, load_balancer=balancer)
    got = load_workspace(path).unwrap().group("app", "fleet").load_balancer
    assert got == LoadBalancerConfig(
        "haproxy",
        socket=tmp_path / "run/admin.sock",
        backend="web",
        servers={"i01": "web1"},
        port_env="WEB_PORT",
        health_check=HealthCheckConfig("/healthz", 2.0, healthy_threshold=2),
        deregistration_delay_seconds=0.0,
        allow_timeout_seconds=60.0,
    )


def test_traffic_control_without_a_balancer_is_an_error_saying_what_to_add(
    tmp_path: Path,
) -> None:
    (error,) = errors(workspace(tmp_path, deployment_style=TRAFFIC))
    assert "deploydeck.yml:" in error
    assert "applications.app.deployment_groups.fleet.load_balancer" in error
    assert "WITH_TRAFFIC_CONTROL needs the group's load_balancer" in error
    assert "add load_balancer: {kind: builtin" in error


@pytest.mark.parametrize(
    "balancer, key, message",
    [
        ({"kind": "nginx"}, "load_balancer.kind", "kind must be one of builtin, haproxy, command"),
        ({"port": 80}, "load_balancer.kind", "load_balancer needs a kind"),
        ({"kind": "builtin", "port": 70000}, "load_balancer.port", "port must be from 0"),
        ({"kind": "command"}, "load_balancer.commands", "a command balancer needs commands"),
        (
            {"kind": "command", "commands": {"block": "b", "allow": "a"}},
            "load_balancer.commands.health",
            "commands needs health",
        ),
        (
            {"kind": "haproxy", "socket": "/run/h.sock"},
            "load_balancer.backend",
            "needs the backend",
        ),
        (
            {"kind": "builtin", "health_check": {"path": "healthz"}},
            "load_balancer.health_check.path",
            "must start with /",
        ),
        (
            {"kind": "builtin", "deregistration_delay_seconds": -1},
            "load_balancer.deregistration_delay_seconds",
            "greater than 0",
        ),
        ({"kind": "builtin", "port_env": "WEB-PORT"}, "load_balancer.port_env", "not an env"),
    ],
)
def test_a_wrong_balancer_is_refused_naming_its_key(
    tmp_path: Path, balancer: dict[str, Any], key: str, message: str
) -> None:
    found = errors(workspace(tmp_path, deployment_style=TRAFFIC, load_balancer=balancer))
    assert any(key in e and message in e for e in found), found


def test_a_balancer_without_traffic_control_is_warned_about(tmp_path: Path) -> None:
    result = load_workspace(workspace(tmp_path, load_balancer={"kind": "builtin"}))
    assert result.ok
    (warning,) = [w for w in result.warnings if "load_balancer" in w.key]
    assert "only with deployment_option WITH_TRAFFIC_CONTROL" in warning.message


def test_a_balancer_key_of_another_kind_is_warned_about(tmp_path: Path) -> None:
    balancer = {"kind": "builtin", "socket": "/run/h.sock"}
    result = load_workspace(workspace(tmp_path, deployment_style=TRAFFIC, load_balancer=balancer))
    assert result.ok
    assert any("unknown key 'socket'" in w.message for w in result.warnings)
