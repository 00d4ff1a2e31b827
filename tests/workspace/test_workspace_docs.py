"""docs/workspace.md: its full example is real (loaded from the doc itself, so it cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.workspace import load_workspace, starter_workspace
from tests.workspace.support import clean, write

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "workspace.md"
SECRET = "hunter2-from-the-environment"


def full_example() -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"^## A full example\n.*?^```yaml\n(.*?)^```", text, re.S | re.M)
    assert match, "docs/workspace.md lost its '## A full example' yaml block"
    return match.group(1)


def test_the_full_example_loads_with_no_errors_and_no_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, full_example())
    result = load_workspace(path, environ={"WEB1_DB_PASSWORD": SECRET})
    clean(result)
    ws = result.unwrap()
    assert ws.folder == tmp_path and ws.state_dir == tmp_path / ".deploydeck"
    assert list(ws.applications) == ["web", "hello"]
    assert list(ws.instances) == ["web-1", "web-2", "db-1"]
    assert set(ws.configs) == {"NinetyPercent", "Canary20"}


def test_the_full_example_means_what_its_comments_say(tmp_path: Path) -> None:
    ws = load_workspace(
        write(tmp_path, full_example()), environ={"WEB1_DB_PASSWORD": SECRET}
    ).unwrap()
    names = {g: [i.name for i in ws.group_instances("web", g)] for g in ("fleet", "prod-web")}
    assert names == {"fleet": ["web-1", "web-2"], "prod-web": ["web-1"]}
    assert [i.name for i in ws.group_instances("web", "databases")] == ["db-1"]
    assert ws.group_instances("hello", "live") == ()
    assert ws.group("hello", "live").target == {"function": "hello", "alias": "live"}

    fleet = ws.group("web", "fleet")
    assert ws.resolve_config(None, fleet).name == "CodeDeployDefault.HalfAtATime"
    assert ws.resolve_config(None, ws.group("web", "databases")).name == (
        "CodeDeployDefault.OneAtATime"
    )
    assert ws.resolve_config(None, ws.group("hello", "live")).traffic_routing is not None
    assert fleet.auto_rollback.enabled and len(fleet.auto_rollback.events) == 3
    assert [t.kind for t in fleet.triggers] == ["webhook", "file", "command"]
    assert fleet.triggers[1].file == tmp_path / "logs" / "deployments.jsonl"
    assert fleet.triggers[2].command == ("./notify.sh", "--urgent")
    assert len(fleet.triggers[0].events) == 10

    web1 = ws.instances["web-1"]
    assert web1.root == tmp_path / ".deploydeck" / "instances" / "web-1"
    assert web1.hook_environment() == {"WEB_PORT": "8081", "DB_PASSWORD": SECRET}
    assert ws.secret_values() == frozenset({SECRET, "not-a-real-token"})

    db = ws.instances["db-1"]
    assert db.transport == "ssh" and db.root is None and db.ssh is not None
    assert (db.ssh.host, db.ssh.port, db.ssh.user) == ("192.0.2.10", 22, "deploy")
    assert db.ssh.key_file == Path("~/.ssh/id_ed25519").expanduser()
    assert db.ssh.known_hosts == tmp_path / ".deploydeck" / "known_hosts"
    assert (db.ssh.agent_root, db.ssh.python) == ("/var/lib/deploydeck", "python3")
    assert db.ssh.proxy_jump == "bastion.example.com"
    assert ws.settings.kill_grace_seconds == 10.0


def test_the_error_shown_in_the_doc_is_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample diagnostic in "Errors and warnings" is the starter file's, with one typo."""
    shown = re.search(r"^(deploydeck\.yml:\d+:\d+: error: .*)$", DOC.read_text(), re.M)
    assert shown, "the doc lost its sample diagnostic"
    text = starter_workspace(4).replace("HalfAtATime\n", "HalfAtATme\n", 1)
    (tmp_path / "deploydeck.yml").write_text(text)
    monkeypatch.chdir(tmp_path)
    errors = load_workspace(Path("deploydeck.yml"), environ={}).errors
    assert [str(d) for d in errors] == [shown.group(1)]


def test_the_alarms_example_loads_with_each_kind_and_observe_only(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"^### Alarms\n.*?^```yaml\n(.*?)^```", text, re.S | re.M)
    assert match, "docs/workspace.md lost its '### Alarms' yaml block"
    result = load_workspace(write(tmp_path, match.group(1)))
    clean(result)
    alarms = result.unwrap().group("web", "fleet").alarm_configuration
    assert alarms is not None and alarms.enabled and alarms.interval_seconds == 5
    assert [(a.name, a.kind) for a in alarms.alarms] == [
        ("errors", "http"),
        ("smoke", "command"),
        ("five-hundreds", "prometheus"),
        ("p95-latency", "prometheus"),
    ]
    assert [a.observe_only for a in alarms.alarms] == [False, False, False, True]
