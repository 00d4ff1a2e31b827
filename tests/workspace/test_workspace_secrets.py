"""Secrets (ARCHITECTURE.md invariant 9): a secret value never reaches a diagnostic, a repr or
str();
`redact` masks it in any text; `from_env` is read when the file is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workspace import EnvValue, WorkspaceError, load_workspace, redact_text
from tests.workspace.support import load, marked_line, write

INLINE = "tok-inline-5f3a"
FROM_ENV = "pw-from-env-9c1e"

GOOD = f"""
applications:
  web:
    deployment_groups:
      fleet:
        tag_filters: [{{key: role, value: web}}]
instances:
  web-1:
    tags: {{role: web}}
    environment:
      WEB_PORT: 8081
      API_TOKEN: {{value: "{INLINE}", secret: true}}
      DB_PASSWORD: {{from_env: WEB1_DB_PASSWORD, secret: true}}
      PLAIN_FROM_ENV: {{from_env: REGION}}
"""
ENVIRON = {"WEB1_DB_PASSWORD": FROM_ENV, "REGION": "eu-west-1"}


def everything_shown(result: object) -> str:
    """Every text a user could see: diagnostics, repr and str of the result and its parts."""
    parts = [repr(result), str(result)]
    for diagnostic in getattr(result, "diagnostics", ()):
        parts += [str(diagnostic), repr(diagnostic)]
    workspace = getattr(result, "workspace", None)
    if workspace is not None:
        parts += [repr(workspace), str(workspace)]
        for instance in workspace.instances.values():
            parts += [repr(instance), str(instance)]
            for value in instance.environment.values():
                parts += [repr(value), str(value), f"{value}", f"{value!r}"]
    return "\n".join(parts)


def test_a_loaded_workspace_shows_secrets_only_to_hooks(tmp_path: Path) -> None:
    result = load(tmp_path, GOOD, ENVIRON)
    assert result.ok and result.diagnostics == ()
    shown = everything_shown(result)
    assert INLINE not in shown and FROM_ENV not in shown
    assert "***" in shown and "eu-west-1" in shown and "8081" in shown

    ws = result.unwrap()
    web1 = ws.instances["web-1"]
    assert web1.hook_environment() == {
        "WEB_PORT": "8081",
        "API_TOKEN": INLINE,
        "DB_PASSWORD": FROM_ENV,
        "PLAIN_FROM_ENV": "eu-west-1",
    }
    assert web1.environment["DB_PASSWORD"] == EnvValue(FROM_ENV, True, "WEB1_DB_PASSWORD")
    assert ws.secret_values() == frozenset({INLINE, FROM_ENV})


def test_redact_masks_every_secret(tmp_path: Path) -> None:
    ws = load(tmp_path, GOOD, ENVIRON).unwrap()
    line = f"login {FROM_ENV} token={INLINE}; again {INLINE} in eu-west-1"
    assert ws.redact(line) == "login *** token=***; again *** in eu-west-1"
    assert ws.redact("nothing secret") == "nothing secret"
    # A secret containing another is masked whole; empty secrets are ignored.
    assert redact_text("abcdef abc", ["abc", "abcdef", ""]) == "*** ***"


def test_secrets_never_appear_in_diagnostics(tmp_path: Path) -> None:
    text = f"""
applications:
  web:
    deployment_groups:
      fleet:
        tag_filters: [{{key: role, value: web}}]
        triggers:
          - {{name: a, events: [DeploymentStart], webhook: "ftp://{INLINE}"}}
          - {{name: b, events: [DeploymentStart], webhook: "ftp://{FROM_ENV}"}}
instances:
  web-1:
    tags: {{role: web, note: "{INLINE}{INLINE}"}}
    environment:
      API_TOKEN: {{value: !custom "{INLINE}", secret: true}}
      DB_PASSWORD: {{from_env: WEB1_DB_PASSWORD, secret: true}}
      BAD_FLAG: {{value: "flagged-3e7d", secret: "yes"}}
      BAD_TYPE: {{value: [listed-8b2c], secret: true}}
      BOTH: {{value: "both-1a9f", from_env: WEB1_DB_PASSWORD, secret: true}}
"""
    result = load(tmp_path, text, ENVIRON)
    assert len(result.errors) == 5, [str(d) for d in result.errors]
    assert any("not understood" in d.message for d in result.warnings)
    shown = everything_shown(result)
    for secret in (INLINE, FROM_ENV, "flagged-3e7d", "listed-8b2c", "both-1a9f"):
        assert secret not in shown, secret
    with pytest.raises(WorkspaceError) as raised:
        result.unwrap()
    assert INLINE not in str(raised.value) and FROM_ENV not in str(raised.value)
    webhook_errors = [d for d in result.errors if d.key.endswith("webhook")]
    assert [d.value for d in webhook_errors] == ["ftp://***", "ftp://***"]


def test_a_missing_from_env_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    text = """
instances:
  web-1:
    environment:
      DB_PASSWORD: {from_env: WEB1_DB_PASSWORD, secret: true}  #<
"""
    result = load(tmp_path, text, environ={})
    (error,) = result.errors
    assert error.line == marked_line(text)
    assert error.key == "instances.web-1.environment.DB_PASSWORD.from_env"
    assert "WEB1_DB_PASSWORD is not set" in error.message
    assert "export WEB1_DB_PASSWORD=" in error.hint


def test_from_env_is_read_from_the_process_environment_at_load_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("WEB1_DB_PASSWORD", "first")
    monkeypatch.setenv("REGION", "here")
    ws = load_workspace(path).unwrap()
    monkeypatch.setenv("WEB1_DB_PASSWORD", "second")
    assert ws.instances["web-1"].hook_environment()["DB_PASSWORD"] == "first"
    monkeypatch.delenv("WEB1_DB_PASSWORD")
    assert not load_workspace(path).ok


def test_a_non_secret_value_is_shown_normally() -> None:
    value = EnvValue("8081")
    assert (str(value), repr(value)) == ("8081", "EnvValue(value='8081', secret=False)")
    assert repr(EnvValue("x", True)) == "EnvValue(value=***, secret=True)"
