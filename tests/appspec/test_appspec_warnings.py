"""Warnings: the appspec is accepted (as the reference accepts it) but something is off."""

from __future__ import annotations

import textwrap

import pytest

from engine.appspec import AppSpecResult, Diagnostic, ServerAppSpec, parse_server_appspec

HEAD = "version: 0.0\nos: linux\n"


def parse(body: str) -> AppSpecResult[ServerAppSpec]:
    return parse_server_appspec(HEAD + textwrap.dedent(body))


def only_warning(body: str) -> Diagnostic:
    result = parse(body)
    assert result.ok, [str(d) for d in result.errors]
    assert len(result.warnings) == 1, [str(d) for d in result.warnings]
    return result.warnings[0]


@pytest.mark.parametrize(
    ("event", "suggestion"),
    [
        ("ApplicationStrat", "ApplicationStart"),
        ("applicationstart", "ApplicationStart"),
        ("BeforeInstal", "BeforeInstall"),
        ("ValidateServices", "ValidateService"),
        ("AfterAllowTestTraffic", "AfterAllowTraffic"),
    ],
)
def test_unknown_event_suggests_the_closest_real_one(event: str, suggestion: str) -> None:
    warning = only_warning(f"hooks:\n  {event}:\n    - location: a.sh\n")
    assert warning.key == f"hooks.{event}"
    assert warning.value == event
    assert (warning.line, warning.column) == (4, 3)
    assert "not a Server lifecycle event" in warning.message
    assert suggestion in warning.hint


def test_unknown_event_far_from_everything_lists_the_events() -> None:
    warning = only_warning("hooks:\n  zzz:\n    - location: a.sh\n")
    assert "ValidateService" in warning.hint and "BeforeBlockTraffic" in warning.hint


@pytest.mark.parametrize(
    ("event", "where"),
    [
        ("DownloadBundle", "BeforeInstall"),
        ("Install", "AfterInstall"),
        ("BlockTraffic", "BeforeBlockTraffic"),
        ("AllowTraffic", "AfterAllowTraffic"),
        ("Start", "ApplicationStart"),
        ("End", "ValidateService"),
    ],
)
def test_reserved_events_are_flagged_as_not_scriptable(event: str, where: str) -> None:
    warning = only_warning(f"hooks:\n  {event}:\n    - location: a.sh\n")
    assert "cannot run scripts" in warning.message
    assert where in warning.hint


@pytest.mark.parametrize("event", ["ApplicationStop", "BeforeBlockTraffic", "ValidateService"])
def test_real_events_give_no_warning(event: str) -> None:
    assert not parse(f"hooks:\n  {event}:\n    - location: a.sh\n").diagnostics


@pytest.mark.parametrize("written", ['"false"', "'no'", '"off"', '"0"', '""', '"False"', "0"])
def test_false_looking_sudo_warns_that_it_means_sudo(written: str) -> None:
    result = parse(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      sudo: {written}\n")
    assert result.ok and result.appspec is not None
    assert result.appspec.hook_scripts("BeforeInstall")[0].sudo is True
    (warning,) = result.warnings
    assert warning.key == "hooks.BeforeInstall[0].sudo"
    assert (warning.line, warning.column) == (6, 13)
    assert "WILL run with sudo" in warning.message
    assert "sudo: false" in warning.hint


@pytest.mark.parametrize("written", ["false", "no", "true", '"true"', "yes"])
def test_plain_sudo_values_give_no_warning(written: str) -> None:
    result = parse(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      sudo: {written}\n")
    assert result.ok and not result.warnings


def test_event_total_timeout_above_3600_warns() -> None:
    warning = only_warning(
        """\
        hooks:
          AfterInstall:
            - location: a.sh
              timeout: 300
            - location: b.sh
        """
    )
    assert warning.key == "hooks.AfterInstall"
    assert warning.value == "3900"
    assert "3900" in warning.message and "3600" in warning.message


def test_event_total_timeout_of_exactly_3600_is_fine() -> None:
    result = parse(
        "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 1800\n"
        "    - location: b.sh\n      timeout: 1800\n"
    )
    assert result.ok and not result.warnings
    assert result.appspec is not None
    assert result.appspec.hook_event_timeout("AfterInstall") == 3600


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("hook", "hooks"), ("file", "files"), ("permission", "permissions"), ("Hooks", "hooks")],
)
def test_unknown_top_level_key_suggests_the_close_key(key: str, suggestion: str) -> None:
    warning = only_warning(f"{key}:\n  ApplicationStart: []\n")
    assert warning.key == key
    assert (warning.line, warning.column) == (3, 1)
    assert "ignored" in warning.message
    assert f"`{suggestion}`" in warning.hint


def test_unknown_keys_inside_entries_warn() -> None:
    result = parse(
        """\
        files:
          - source: web
            destination: /srv/web
            overwrite: true
        permissions:
          - object: /srv/web
            mod: "644"
        hooks:
          ApplicationStart:
            - location: a.sh
              timout: 30
        """
    )
    assert result.ok
    by_key = {w.key: w for w in result.warnings}
    assert set(by_key) == {
        "files[0].overwrite",
        "permissions[0].mod",
        "hooks.ApplicationStart[0].timout",
    }
    assert "`mode`" in by_key["permissions[0].mod"].hint
    assert "`timeout`" in by_key["hooks.ApplicationStart[0].timout"].hint
    assert (by_key["files[0].overwrite"].line, by_key["files[0].overwrite"].column) == (6, 5)


def test_timeout_with_trailing_text_warns_how_it_is_read() -> None:
    warning = only_warning('hooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: "30s"\n')
    assert "30 seconds" in warning.message and warning.hint == "write timeout: 30"


def test_fractional_timeout_warns_it_is_truncated() -> None:
    warning = only_warning("hooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: 1.9\n")
    assert "1 whole seconds" in warning.message


def test_relative_destination_warns() -> None:
    warning = only_warning("files:\n  - source: web\n    destination: srv/web\n")
    assert warning.key == "files[0].destination"


def test_duplicate_keys_warn_with_both_lines_and_last_wins() -> None:
    result = parse_server_appspec("version: 0.0\nos: linux\nos: windows\n")
    assert not result.ok  # the last os wins, as in PyYAML and Ruby
    (warning,) = result.warnings
    assert (warning.line, warning.column) == (3, 1)
    assert "line 2" in warning.message and "line 3" in warning.message
    result = parse_server_appspec("version: 0.0\nos: windows\nos: linux\n")
    assert result.ok and len(result.warnings) == 1


def test_duplicate_hook_events_warn() -> None:
    result = parse(
        "hooks:\n  AfterInstall:\n    - location: a.sh\n  AfterInstall:\n    - location: b.sh\n"
    )
    assert result.ok and result.appspec is not None
    assert result.appspec.hook_scripts("AfterInstall")[0].location == "b.sh"
    assert "line 4" in result.warnings[0].message


def test_multiple_documents_warn_and_only_the_first_counts() -> None:
    result = parse_server_appspec("version: 0.0\nos: linux\n---\nos: windows\n")
    assert result.ok
    assert "more than one YAML document" in result.warnings[0].message
