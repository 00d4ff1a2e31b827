"""`deploydeck init`: a commented starter workspace that loads with no errors and no warnings."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.workspace import load_workspace, starter_workspace
from engine.workspace.starter import free_port_range
from tui.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_init_writes_a_workspace_that_loads_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = free_port_range(4)
    code, output = init(capsys)
    assert code == 0, output
    path = tmp_path / "deploydeck.yml"
    result = load_workspace(path, environ={})
    assert result.ok and result.diagnostics == (), [str(d) for d in result.diagnostics]
    ws = result.unwrap()
    group = ws.group("web", "fleet")
    assert [i.name for i in ws.group_instances("web", "fleet")] == [
        f"web-{n}" for n in (1, 2, 3, 4)
    ]
    assert all(i.transport == "local" and i.tags == {"role": "web"} for i in ws.instances.values())
    assert ws.resolve_config(None, group).name == "CodeDeployDefault.HalfAtATime"
    assert group.auto_rollback.enabled
    assert group.auto_rollback.events == ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST")
    assert list(ws.configs) == ["QuarterAtATime"]
    ports = [i.hook_environment()["WEB_PORT"] for i in ws.instances.values()]
    assert ports == [str(first + n) for n in range(4)]
    roots = [i.root for i in ws.instances.values()]
    assert roots == [tmp_path / ".deploydeck" / "instances" / f"web-{n}" for n in (1, 2, 3, 4)]
    # It says what it wrote and what to run next.
    assert str(path) in output and "web-1 to web-4" in output
    assert f"{first}-{first + 3}" in output
    assert "Next:" in output
    suggested = [
        line.strip() for line in output.splitlines() if line.strip().startswith("deploydeck ")
    ]
    assert [shlex.split(line)[1] for line in suggested] == ["plan", "create-deployment"]
    for line in suggested:
        args = build_parser().parse_args(shlex.split(line)[1:])  # the CLI accepts it as printed
        assert (args.application_name, args.deployment_group_name) == ("web", "fleet")
        # Outside the checkout, the sample's absolute path, so the command works as printed.
        assert str(args.revision) == str(REPO / "sample_revisions" / "web-v1")
        assert args.workspace is None  # the workspace is in the current folder


def test_next_steps_name_the_workspace_when_it_is_elsewhere(tmp_path: Path) -> None:
    from tui.commands.init_cmd import next_steps

    lines = next_steps(tmp_path / "demo")
    assert f"-w {tmp_path / 'demo'}" in lines[1] and f"-w {tmp_path / 'demo'}" in lines[2]


def test_without_deployment_commands_the_next_step_is_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.commands import init_cmd

    monkeypatch.setattr(init_cmd, "accepted", lambda argv: False)
    code, output = init(capsys, str(tmp_path))
    assert code == 0 and "deploydeck validate" in output and "create-deployment" not in output


def test_the_starter_explains_each_section() -> None:
    text = starter_workspace(4)
    for section in ("settings:", "applications:", "instances:", "deployment_configs:"):
        before = text[: text.index(f"\n{section}")].rstrip().splitlines()[-1]
        assert before.startswith("#"), f"no comment above {section}"
    for key in ("deployment_config:", "tag_filters:", "auto_rollback:", "file_exists_behavior:"):
        line_before = text[: text.index(key)].rstrip().splitlines()[-1].strip()
        assert line_before.startswith("#"), f"no comment above {key}"
    assert "sample_revisions/web-v1" in text and "WEB_PORT" in text


@pytest.mark.parametrize("count", [1, 2, 7, 1000])
def test_every_allowed_size_loads_clean_with_distinct_ports(tmp_path: Path, count: int) -> None:
    path = tmp_path / "deploydeck.yml"
    path.write_text(starter_workspace(count))
    result = load_workspace(path, environ={})
    assert result.ok and result.diagnostics == (), [str(d) for d in result.diagnostics][:5]
    ws = result.unwrap()
    ports = [i.hook_environment()["WEB_PORT"] for i in ws.instances.values()]
    assert len(ports) == count == len(set(ports))
    assert ports[0] == "8081" and ports[-1] == str(8080 + count)
    assert len(ws.group_instances("web", "fleet")) == count


def test_a_single_instance_uses_a_config_it_can_run(tmp_path: Path) -> None:
    """HalfAtATime could never take the only instance offline (HEALTH_CONSTRAINTS_INVALID)."""
    from engine.configs import plan_deployment

    path = tmp_path / "deploydeck.yml"
    path.write_text(starter_workspace(1))
    ws = load_workspace(path, environ={}).unwrap()
    config = ws.resolve_config(None, ws.group("web", "fleet"))
    assert config.name == "CodeDeployDefault.OneAtATime"
    assert plan_deployment(config, ["web-1"]).start_problem is None
    four = tmp_path / "four.yml"
    four.write_text(starter_workspace(4))
    ws4 = load_workspace(four, environ={}).unwrap()
    names = [i.name for i in ws4.group_instances("web", "fleet")]
    assert (
        plan_deployment(ws4.resolve_config(None, ws4.group("web", "fleet")), names).start_problem
        is None
    )


def test_init_gives_ports_nothing_listens_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port another server holds would make the sample fail (or pass someone else's check)."""
    monkeypatch.chdir(tmp_path)
    taken = free_port_range(3)
    with socket.socket() as server:
        server.bind(("127.0.0.1", taken + 1))  # in the middle of the range init would pick
        server.listen()
        code, output = init(capsys, "--local-instances", "3")
        assert code == 0, output
        ws = load_workspace(tmp_path / "deploydeck.yml", environ={}).unwrap()
        ports = [int(i.hook_environment()["WEB_PORT"]) for i in ws.instances.values()]
        assert taken + 1 not in ports and ports == list(range(ports[0], ports[0] + 3))
        for port in ports:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))  # free
    # It says how to stop the fleet's servers, and the command finds their pid files.
    assert "cat .deploydeck/instances/*/fs/tmp/deploydeck-web/run/server.pid | xargs -r kill" in (
        output
    )


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deploydeck.yml"
    path.write_text("# mine\n")
    code, output = init(capsys, str(tmp_path))
    assert code == 1
    assert "already exists" in output and "--force" in output
    assert path.read_text() == "# mine\n"


def test_force_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deploydeck.yml"
    path.write_text("# mine\n")
    code, output = init(capsys, "--force", "--local-instances", "2", str(tmp_path))
    assert code == 0, output
    assert "Replaced" in output
    ws = load_workspace(path, environ={}).unwrap()
    assert list(ws.instances) == ["web-1", "web-2"]
    assert [p.name for p in tmp_path.iterdir()] == ["deploydeck.yml"]  # no temporary left


def test_path_is_a_folder_created_if_needed_or_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(capsys, str(tmp_path / "a" / "b"))[0] == 0
    assert (tmp_path / "a" / "b" / "deploydeck.yml").is_file()
    assert init(capsys, str(tmp_path / "staging.yml"))[0] == 0
    assert load_workspace(tmp_path / "staging.yml", environ={}).ok


@pytest.mark.parametrize("bad", ["0", "1001", "-3", "four"])
def test_the_instance_count_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["init", "--local-instances", bad, str(tmp_path)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--local-instances" in err and ("from 1 to 1000" in err or "whole number" in err)
    assert not (tmp_path / "deploydeck.yml").exists()
    with pytest.raises(ValueError):
        starter_workspace(int(bad) if bad.lstrip("-").isdigit() else 0)


def test_the_real_program(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "init", "--local-instances", "3", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "web-1 to web-3" in done.stdout
    assert "--revision sample_revisions/web-v1" in done.stdout  # run in the checkout: relative
    again = subprocess.run(
        [sys.executable, "-m", "tui.cli", "init", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "already exists" in again.stdout
    assert (
        "init"
        in subprocess.run(
            [sys.executable, "-m", "tui.cli", "--help"], cwd=REPO, capture_output=True, text=True
        ).stdout
    )
