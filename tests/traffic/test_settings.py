"""Traffic settings: cloud-like defaults, clear errors, and one interface for every balancer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.clock import RealClock
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.command import BalancerCommands, CommandBalancer
from engine.traffic.factory import BuiltinSpec, CommandSpec, HAProxySpec, make_balancer
from engine.traffic.haproxy import HAProxyBalancer, owned_config
from engine.traffic.model import (
    HealthCheck,
    LoadBalancer,
    Target,
    TrafficError,
    TrafficSettings,
)


def test_defaults_are_a_cloud_target_groups():
    settings = TrafficSettings()
    check = settings.health_check
    assert (check.interval_seconds, check.timeout_seconds) == (30.0, 5.0)
    assert (check.healthy_threshold, check.unhealthy_threshold) == (5, 2)
    assert settings.deregistration_delay_seconds == 300.0
    assert settings.allow_timeout_seconds == 3600.0
    assert settings.health_floor_seconds == 150.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"interval_seconds": 0},
            "health_check.interval_seconds must be a number of seconds above 0, not 0",
        ),
        ({"timeout_seconds": float("nan")}, "health_check.timeout_seconds must be a number"),
        (
            {"healthy_threshold": 0},
            "health_check.healthy_threshold must be a whole number of 1 or more",
        ),
        ({"unhealthy_threshold": 1.5}, "health_check.unhealthy_threshold must be a whole number"),
        ({"path": "healthz"}, "health_check.path 'healthz' must start with /"),
    ],
)
def test_bad_health_check_settings_name_the_setting(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        dataclasses.replace(HealthCheck(), **change)


def test_bad_traffic_settings_name_the_setting():
    with pytest.raises(ValueError, match="deregistration_delay_seconds must be"):
        TrafficSettings(deregistration_delay_seconds=-1)
    with pytest.raises(ValueError, match="allow_timeout_seconds must be"):
        TrafficSettings(allow_timeout_seconds=0)
    assert TrafficSettings(deregistration_delay_seconds=0).deregistration_delay_seconds == 0


def test_every_kind_is_made_from_its_spec_and_is_a_load_balancer(tmp_path: Path):
    targets = [Target("web 1", "127.0.0.1", 9001), Target("web-2", "127.0.0.1", 9002)]
    settings, clock = TrafficSettings(), RealClock()
    commands = BalancerCommands(block="true", allow="true", health="true")
    made = {
        "builtin": make_balancer(BuiltinSpec(), targets, settings, clock, tmp_path),
        "owned": make_balancer(HAProxySpec(port=8081), targets, settings, clock, tmp_path),
        "attached": make_balancer(
            HAProxySpec(socket=tmp_path / "s", backend="app", servers={"web 1": "a"}),
            targets,
            settings,
            clock,
            tmp_path,
        ),
        "command": make_balancer(CommandSpec(commands), targets, settings, clock, tmp_path),
    }
    assert isinstance(made["builtin"], BuiltinBalancer)
    assert isinstance(made["command"], CommandBalancer)
    assert made["owned"].servers == {"web 1": "web_1", "web-2": "web-2"}
    assert made["attached"].servers == {"web 1": "a", "web-2": "web-2"}
    for balancer in made.values():
        check_protocol(balancer)


def check_protocol(balancer: LoadBalancer) -> None:
    for name in ("start", "block", "allow", "states", "close"):
        assert callable(getattr(balancer, name))
    assert balancer.kind in ("builtin", "haproxy", "command")


def test_the_owned_haproxy_config_carries_the_settings(tmp_path: Path):
    settings = TrafficSettings(
        health_check=HealthCheck("/up", 2.5, 1.0, healthy_threshold=3, unhealthy_threshold=4)
    )
    config = owned_config(
        tmp_path / "admin.sock", ("0.0.0.0", 8080), [Target("a", "10.0.0.5", 80)], settings
    )
    assert f'stats socket "{tmp_path / "admin.sock"}" mode 600 level admin' in config
    assert "bind 0.0.0.0:8080" in config
    assert "option httpchk GET /up" in config
    assert "default-server check inter 2500ms rise 3 fall 4" in config
    assert "timeout check 1000ms" in config
    assert "server a 10.0.0.5:80" in config


def test_instance_names_that_collide_as_server_names_are_refused(tmp_path: Path):
    targets = [Target("web 1", "127.0.0.1", 9001), Target("web/1", "127.0.0.1", 9002)]
    with pytest.raises(TrafficError, match="repeated HAProxy server names"):
        HAProxyBalancer.owned(tmp_path, targets, ("127.0.0.1", 8080))
