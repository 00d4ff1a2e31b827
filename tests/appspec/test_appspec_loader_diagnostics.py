"""The positioned YAML/JSON loader and the diagnostics contract (str form, positions, unwrap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.appspec import (
    AppSpecError,
    AppSpecResult,
    Diagnostic,
    detect_kind,
    load_server_appspec,
    parse_appspec,
    parse_server_appspec,
)
from engine.appspec.document import Node, load_document
from engine.appspec.report import Reporter
from engine.appspec.ruby import to_i, to_s

NESTED = """\
version: 0.0
os: linux
hooks:
  ApplicationStart:
    - location: scripts/start.sh
      timeout: foo
      runas: deploy
permissions:
  - object: /srv/web
    acls:
      - "user:bob:rw-"
      - "u::rw"
    context:
      type: t
      range: s3-s1
"""


def load(text: str, filename: str = "appspec.yml") -> tuple[Node | None, Reporter]:
    reporter = Reporter(filename)
    return load_document(text, reporter).root, reporter


def value_at(text: str, *path: str | int) -> Node:
    node, _ = load(text)
    assert node is not None
    for step in path:
        if isinstance(step, int):
            node = node.items[step]
        else:
            found = node.get(step)
            assert found is not None
            node = found
    return node


# --- YAML typing and positions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value", "quoted"),
    [
        ("0644", 420, False),
        ("0.0", 0.0, False),
        ('"0.0"', "0.0", True),
        ("yes", True, False),
        ("off", False, False),
        ("'yes'", "yes", True),
        ("~", None, False),
        ("1_000", 1000, False),
        ("0x1f", 31, False),
        ("|\n  text\n", "text\n", True),
    ],
)
def test_scalars_follow_yaml_1_1_typing_and_keep_their_text(
    written: str, value: object, quoted: bool
) -> None:
    node = value_at(f"k: {written}", "k")
    assert node.value == value and type(node.value) is type(value)
    assert node.quoted is quoted
    if not written.startswith("|"):
        assert node.text == written.strip("'\"")


def test_positions_are_one_based_lines_and_columns() -> None:
    node = value_at(NESTED, "hooks", "ApplicationStart", 0, "timeout")
    assert (node.line, node.column) == (6, 16)
    node = value_at(NESTED, "permissions", 0, "acls", 1)
    assert (node.line, node.column) == (12, 9)


def test_nested_error_positions_keys_and_values() -> None:
    result = parse_server_appspec(NESTED)
    found = {d.key: d for d in result.errors}
    timeout = found["hooks.ApplicationStart[0].timeout"]
    assert (timeout.line, timeout.column, timeout.value) == (6, 16, "foo")
    acl = found["permissions[0].acls[1]"]
    assert (acl.line, acl.column, acl.value) == (12, 9, "u::rw")
    context_range = found["permissions[0].context.range"]
    assert (context_range.line, context_range.column, context_range.value) == (15, 14, "s3-s1")
    assert len(result.errors) == 3


def test_missing_key_points_at_the_entry() -> None:
    result = parse_server_appspec(
        "version: 0.0\nos: linux\nfiles:\n  - source: a\n    destination: /b\n  - source: c\n"
    )
    (error,) = result.errors
    assert (error.key, error.line, error.column, error.value) == (
        "files[1].destination",
        6,
        5,
        None,
    )


def test_diagnostic_str_is_one_readable_line() -> None:
    result = parse_server_appspec(NESTED)
    timeout = next(d for d in result.errors if d.key.endswith("timeout"))
    assert str(timeout) == (
        "appspec.yml:6:16: error: hooks.ApplicationStart[0].timeout: timeout must be a positive "
        "number of seconds (got 'foo'); write e.g. timeout: 300"
    )
    bare = Diagnostic("warning", "f.yml", 1, 2, "", None, "msg")
    assert str(bare) == "f.yml:1:2: warning: msg"


def test_every_error_names_file_position_key_and_hint() -> None:
    result = parse_server_appspec(NESTED, filename="rev/appspec.yml")
    for diagnostic in result.diagnostics:
        assert diagnostic.file == "rev/appspec.yml"
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert diagnostic.key
        assert diagnostic.hint


def test_unwrap_raises_appspec_error_listing_all_errors() -> None:
    result = parse_server_appspec(NESTED)
    assert result.appspec is None and not result.ok
    with pytest.raises(AppSpecError) as caught:
        result.unwrap()
    text = str(caught.value)
    assert text.startswith("invalid appspec (3 errors):")
    assert all(str(d) in text for d in result.errors)
    assert caught.value.diagnostics == result.diagnostics


def test_unwrap_returns_the_appspec_when_ok() -> None:
    result = parse_server_appspec("version: 0.0\nos: linux\n")
    assert result.unwrap() is result.appspec
    assert result.errors == () and result.warnings == ()


def test_result_is_frozen() -> None:
    result: AppSpecResult[object] = AppSpecResult(None)
    with pytest.raises(AttributeError):
        result.appspec = 1  # type: ignore[misc]


# --- syntax errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "hint_fragment"),
    [
        ("version: 0.0\nos: linux\nhooks:\n\tA: []\n", 4, 1, "tabs"),
        ("version: 0.0\nos: 'linux\n", 3, 1, "quote"),
        ("version: 0.0\nos: linux: x\n", 2, 10, "quote values"),
        ("version: 0.0\nos: linux\nhooks: *nope\n", 3, 8, "anchor"),
        ("files: [a, b\n", 2, 1, ""),
    ],
)
def test_yaml_syntax_errors_become_positioned_diagnostics(
    text: str, line: int, column: int, hint_fragment: str
) -> None:
    result = parse_server_appspec(text)
    (error,) = result.errors
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith("YAML syntax error")
    assert hint_fragment in error.hint


@pytest.mark.parametrize(
    "text",
    [
        'version: 0.0\nos: linux\nx: "\\U00110000"\n',
        'version: 0.0\nos: linux\nx: "\\UFFFFFFFF"\n',
        '{"version": 0.0, "os": "linux", "x": "\\U00110000"}',
    ],
)
def test_escapes_naming_no_character_are_a_diagnostic(text: str) -> None:
    # PyYAML's scanner raises ValueError/OverflowError here instead of a YAMLError.
    (error,) = parse_appspec(text).errors
    assert error.line == (1 if text.startswith("{") else 3)
    assert "does not exist" in error.message


def test_escapes_naming_no_character_after_the_first_document_are_a_warning() -> None:
    result = parse_server_appspec('version: 0.0\nos: linux\n---\nx: "\\U00110000"\n')
    assert result.ok
    assert any("cannot be read" in w.message for w in result.warnings)


def test_non_printable_characters_are_a_diagnostic() -> None:
    result = parse_server_appspec("version: 0.0\nos: li\x07nux\n")
    (error,) = result.errors
    assert (error.line, error.column) == (2, 7)


def test_self_referencing_alias_is_read_as_null_not_followed() -> None:
    result = parse_server_appspec("version: 0.0\nos: linux\nfiles: &a [*a]\n")
    assert [d.key for d in result.errors] == ["files[0]"]
    result = parse_server_appspec("version: 0.0\nos: linux\nx: &a [*a]\n")
    assert result.ok
    assert any("contains it" in w.message for w in result.warnings)


@pytest.mark.parametrize("depth", [100, 2000])
def test_deep_nesting_is_a_diagnostic_not_a_crash(depth: int) -> None:
    text = "version: 0.0\nos: linux\nhooks: " + "[" * depth + "]" * depth + "\n"
    assert not parse_server_appspec(text).ok


def test_alias_bomb_stays_linear() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 30):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    text = "version: 0.0\nos: linux\n" + "\n".join(lines) + "\n"
    result = parse_server_appspec(text)
    assert result.ok  # unknown keys only warn; nothing is expanded


def test_merge_keys_are_honoured() -> None:
    text = (
        "version: 0.0\nos: linux\n"
        "base: &base {location: scripts/a.sh, timeout: 60}\n"
        "hooks:\n  AfterInstall:\n    - <<: *base\n      timeout: 90\n"
    )
    result = parse_server_appspec(text)
    assert result.ok and result.appspec is not None
    (script,) = result.appspec.hook_scripts("AfterInstall")
    assert (script.location, script.timeout) == ("scripts/a.sh", 90)


def test_unknown_tags_are_read_as_untagged_with_a_warning() -> None:
    result = parse_server_appspec("version: !custom 0.0\nos: linux\n")
    assert result.ok
    assert "tag" in result.warnings[0].message


def test_invalid_timestamp_is_read_as_a_string() -> None:
    node = value_at("d: 2001-13-45", "d")
    assert node.value == "2001-13-45"


# --- JSON -----------------------------------------------------------------------------------


def test_json_appspec_is_accepted() -> None:
    text = json.dumps(
        {
            "version": 0.0,
            "os": "linux",
            "files": [{"source": "web", "destination": "/srv/web"}],
            "hooks": {"ApplicationStart": [{"location": "start.sh", "timeout": 30}]},
        },
        indent=2,
    )
    result = parse_server_appspec(text, filename="appspec.json")
    assert result.ok and result.appspec is not None
    assert result.appspec.hook_event_timeout("ApplicationStart") == 30


def test_json_quoted_version_is_rejected() -> None:
    result = parse_server_appspec('{"version": "0.0", "os": "linux"}', filename="appspec.json")
    assert [d.key for d in result.errors] == ["version"]


def test_json_error_position_is_reported_for_json_files() -> None:
    text = '{\n  "version": 0.0\n  "os": "linux"\n}\n'
    result = parse_server_appspec(text, filename="appspec.json")
    (error,) = result.errors
    assert error.message.startswith("JSON syntax error: Expecting ','")
    assert (error.line, error.column) == (3, 3)


def test_trailing_comma_that_yaml_accepts_is_accepted() -> None:
    text = '{"version": 0.0, "os": "linux",}'
    assert parse_server_appspec(text, filename="appspec.json").ok


def test_json_that_yaml_rejects_falls_back_to_json_with_positions() -> None:
    # A tab before a key inside a block-indented flow mapping trips PyYAML but is valid JSON.
    text = '{\n\t"version": 0.0,\n\t"os": "linux",\n\t"hooks": {"X": [{"location": "a"}]}\n}\n'
    result = parse_server_appspec(text, filename="appspec.json")
    assert result.ok, [str(d) for d in result.diagnostics]
    hooks = next(d for d in result.warnings if d.key == "hooks.X")
    assert (hooks.line, hooks.column) == (4, 12)


def test_json_fallback_parser_positions_and_duplicates() -> None:
    from engine.appspec.document import _load_json

    reporter = Reporter("x.json")
    loaded = _load_json('{"a": [1, 2.5, "s", true, null],\n "a": {"b": -3e2}}', reporter)
    assert loaded.root is not None
    inner = loaded.root.get("a")
    assert inner is not None and inner.is_mapping
    b = inner.get("b")
    assert b is not None and b.value == -300.0 and (b.line, b.column) == (2, 13)
    assert "duplicate key" in reporter.items[0].message


# --- files on disk, kind detection, Ruby helpers -------------------------------------------------


def test_load_server_appspec_from_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_text("version: 0.0\nos: linux\nhooks:\n  Bogus: []\n", encoding="utf-8")
    result = load_server_appspec(path)
    assert result.ok
    assert result.warnings[0].file == str(path)


def test_load_server_appspec_with_bom_and_utf16(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_bytes(b"\xef\xbb\xbfversion: 0.0\nos: linux\n")
    assert load_server_appspec(path).ok
    path.write_bytes("version: 0.0\nos: linux\n".encode("utf-16"))
    assert load_server_appspec(path).ok


def test_undecodable_file_is_a_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "appspec.yml"
    path.write_bytes(b"version: 0.0\nos: li\xffnux\n")
    result = load_server_appspec(path)
    (error,) = result.errors
    assert (error.line, error.column) == (2, 7)
    assert "UTF-8" in error.hint


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_server_appspec(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("version: 0.0\nos: linux\n", "server"),
        (": : :", "server"),
        ("Resources:\n  - f:\n      Type: AWS::Lambda::Function\n", "lambda"),
        ("resources:\n  - s:\n      type: AWS::ECS::Service\n", "ecs"),
        ('{"Resources": [{"s": {"Properties": {"TaskDefinition": "x"}}}]}', "ecs"),
        ("Resources: []\nHooks:\n  - AfterAllowTestTraffic: f\n", "ecs"),
        ("Resources: []\n", "lambda"),
    ],
)
def test_detect_kind(text: str, kind: str) -> None:
    assert detect_kind(text) == kind


def test_parse_appspec_dispatches_by_kind() -> None:
    result = parse_appspec("version: 0.0\nResources:\n  - f:\n      Type: AWS::Lambda::Function\n")
    assert not result.ok
    assert [d.key for d in result.errors] == ["Resources[0].f.Properties"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30), ("30s", 30), ("  -4x", -4), ("foo", 0), ("1_0", 10), ("1__0", 1), ("0d12", 12)],
)
def test_ruby_to_i(value: str, expected: int) -> None:
    assert to_i(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), (True, "true"), (1.0, "1.0"), (1e20, "1.0e+20"), (float("inf"), "Infinity")],
)
def test_ruby_to_s(value: object, expected: str) -> None:
    assert to_s(value) == expected


def test_engine_appspec_does_not_import_textual() -> None:
    code = "import sys, engine.appspec; print('textual' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"
