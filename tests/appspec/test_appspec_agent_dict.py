"""`ServerAppSpec.to_agent_dict()`: exactly the JSON shape of docs/agent-appspec.md."""

from __future__ import annotations

import json
from pathlib import Path

from engine.appspec import load_server_appspec, parse_server_appspec

DOC_APPSPEC = """\
version: 0.0
os: linux
files:
  - source: web
    destination: /srv/web
permissions:
  - object: /srv/web
    owner: www-data
    mode: 644
    acls:
      - "u:bob:rw"
      - "d:g:ops:5"
    context:
      type: httpd_sys_content_t
      range: s0
hooks:
  ApplicationStart:
    - location: scripts/start.sh
      timeout: 300
"""


def doc_example() -> dict[str, object]:
    """The JSON example of docs/agent-appspec.md, read from the doc itself."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "agent-appspec.md"
    text = doc.read_text(encoding="utf-8")
    start = text.index("```json") + len("```json")
    return json.loads(text[start : text.index("```", start)])


def test_agent_dict_matches_the_documented_example() -> None:
    spec = parse_server_appspec(DOC_APPSPEC).unwrap()
    assert spec.to_agent_dict() == doc_example()


def test_agent_dict_is_json_serialisable_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_text(DOC_APPSPEC, encoding="utf-8")
    agent = load_server_appspec(path).unwrap().to_agent_dict()
    assert json.loads(json.dumps(agent)) == agent
    assert list(agent) == ["version", "os", "file_exists_behavior", "files", "permissions", "hooks"]
    assert isinstance(agent["version"], float)


def test_agent_dict_defaults_and_hook_order() -> None:
    spec = parse_server_appspec(
        """\
version: 0
os: linux
file_exists_behavior: RETAIN
permissions:
  - object: /srv
hooks:
  ValidateService:
    - location: v.sh
      sudo: "false"
      runas: " app "
  BeforeInstall: []
  ApplicationStop:
  AfterInstall:
    - location: a.sh
      timeout: "45s"
"""
    ).unwrap()
    agent = spec.to_agent_dict()
    assert agent["version"] == 0.0 and isinstance(agent["version"], float)
    assert agent["file_exists_behavior"] == "RETAIN"
    assert agent["files"] == []
    assert agent["permissions"] == [
        {
            "object": "/srv",
            "pattern": "**",
            "except": [],
            "type": ["file", "directory"],
            "owner": None,
            "group": None,
            "mode": None,
            "acls": None,
            "context": None,
        }
    ]
    assert list(agent["hooks"]) == ["ValidateService", "BeforeInstall", "AfterInstall"]
    assert agent["hooks"]["ValidateService"] == [
        {"location": "v.sh", "timeout": 3600, "runas": "app", "sudo": True}
    ]
    assert agent["hooks"]["BeforeInstall"] == []
    assert agent["hooks"]["AfterInstall"][0]["timeout"] == 45


def test_agent_dict_context_without_range_and_canonical_range() -> None:
    spec = parse_server_appspec(
        "version: 0.0\nos: linux\npermissions:\n"
        "  - object: /a\n    context: {type: t, name: system_u}\n"
        "  - object: /b\n    context: {type: t, range: 's0-s0:c3,c1.c2'}\n"
    ).unwrap()
    first, second = (p["context"] for p in spec.to_agent_dict()["permissions"])
    assert first == {"user": "system_u", "type": "t", "range": None}
    assert second == {"user": None, "type": "t", "range": "s0:c1.c3"}
