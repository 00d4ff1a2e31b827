"""Faults of ECS deployments' input: a group target that cannot be used, a task definition
that is not registered or does not match the appspec, a task definition that cannot be
registered. Real deploydeck processes; each names what is wrong and what to do."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.ecs.test_ecs_deployments import EcsWorkspace
from tests.functions.test_lambda_deployments import dd
from tests.services.conftest import SAMPLE


def test_an_unknown_target_key_fails_the_deployment_naming_it(tmp_path: Path) -> None:
    """target.production_prot (a typo) -> Failed INVALID_ECS_SERVICE naming the key and the
    settings there are; nothing was started"""
    workspace = EcsWorkspace(tmp_path, target={"production_prot": 8080})
    info = workspace.wait(workspace.deploy(workspace.revision("v1", workspace.register())))
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "INVALID_ECS_SERVICE"
    message = info["errorInformation"]["message"]
    assert "target.production_prot is 8080" in message and "production_port" in message
    assert not (tmp_path / ".deploydeck" / "services" / "web").exists()


def test_a_bad_port_fails_the_deployment_saying_what_to_write(tmp_path: Path) -> None:
    """target.test_port "8081" (a string) -> Failed INVALID_ECS_SERVICE: write a port number"""
    workspace = EcsWorkspace(tmp_path, target={"test_port": "8081"})
    info = workspace.wait(workspace.deploy(workspace.revision("v1", workspace.register())))
    assert info["errorInformation"]["code"] == "INVALID_ECS_SERVICE"
    assert "target.test_port is '8081'; write a port number" in info["errorInformation"]["message"]


def test_an_unregistered_task_definition_fails_saying_how_to_register_it(tmp_path: Path) -> None:
    """appspec TaskDefinition web:7 (never registered) -> Failed INVALID_REVISION naming the
    revisions there are and register-task-definition"""
    workspace = EcsWorkspace(tmp_path)
    workspace.register()
    info = workspace.wait(workspace.deploy(workspace.revision("v1", "web:7")))
    assert info["errorInformation"]["code"] == "INVALID_REVISION"
    message = info["errorInformation"]["message"]
    assert "web has revisions 1 to 1, not 7" in message
    assert "deploydeck register-task-definition" in message


def test_a_container_port_the_task_definition_lacks_fails_the_deployment(tmp_path: Path) -> None:
    """appspec ContainerPort 8080 but the task definition's is 9000 -> Failed INVALID_REVISION
    naming both"""
    workspace = EcsWorkspace(tmp_path)
    dd(
        tmp_path,
        "register-task-definition",
        "--family",
        "web",
        "--command",
        f"{sys.executable} {SAMPLE}",
        "--container-port",
        "9000",
    )
    info = workspace.wait(workspace.deploy(workspace.revision("v1", "web:1")))
    assert info["errorInformation"]["code"] == "INVALID_REVISION"
    assert (
        "ContainerPort 8080 is not task definition web:1's container port 9000"
        in (info["errorInformation"]["message"])
    )


def test_a_task_definition_with_a_bad_value_is_not_registered(tmp_path: Path) -> None:
    """register-task-definition --desired-count 0 -> refused naming desired_count; nothing is
    registered"""
    EcsWorkspace(tmp_path)
    result = dd(
        tmp_path,
        "register-task-definition",
        "--family",
        "web",
        "--command",
        "true",
        "--desired-count",
        "0",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "desired_count must be a whole number from 1 to 1000" in result.stdout
    assert not (tmp_path / ".deploydeck" / "services" / "task-definitions.json").exists()
