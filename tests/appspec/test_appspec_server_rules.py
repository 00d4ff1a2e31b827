"""Every accept/reject rule of docs/codedeploy-agent.md#server-appspec for the Server appspec."""

from __future__ import annotations

import textwrap

import pytest

from engine.appspec import (
    AppSpecResult,
    Diagnostic,
    FileMapping,
    HookScript,
    ServerAppSpec,
    parse_server_appspec,
)

HEAD = "version: 0.0\nos: linux\n"


def parse(body: str, head: str = HEAD, **kwargs: str) -> AppSpecResult[ServerAppSpec]:
    return parse_server_appspec(head + textwrap.dedent(body), **kwargs)


def accepted(body: str, head: str = HEAD, **kwargs: str) -> ServerAppSpec:
    result = parse(body, head, **kwargs)
    assert result.ok, [str(d) for d in result.errors]
    assert result.appspec is not None
    return result.appspec


def rejected(body: str, head: str = HEAD, **kwargs: str) -> tuple[Diagnostic, ...]:
    result = parse(body, head, **kwargs)
    assert not result.ok
    assert result.appspec is None
    assert result.errors
    return result.errors


def error_keys(body: str, head: str = HEAD, **kwargs: str) -> list[str]:
    return [d.key for d in rejected(body, head, **kwargs)]


# --- loading (docs/codedeploy-agent.md#appspec-loading) -------------------------------------


def test_minimal_appspec_is_accepted_with_empty_sections() -> None:
    spec = accepted("")
    assert spec == ServerAppSpec(0.0, "linux")
    assert spec.files == () and spec.permissions == () and spec.hooks == ()
    assert spec.file_exists_behavior is None


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n", "---\n", "~\n", "false\n"])
def test_empty_document_is_rejected(text: str) -> None:
    result = parse_server_appspec(text)
    assert not result.ok
    assert "empty" in result.errors[0].message
    assert (result.errors[0].line, result.errors[0].column) == (1, 1)


@pytest.mark.parametrize("text", ["- version: 0.0\n", "just a string\n", "42\n"])
def test_non_mapping_document_is_rejected(text: str) -> None:
    result = parse_server_appspec(text)
    assert not result.ok
    assert "mapping" in result.errors[0].message


@pytest.mark.parametrize("section", ["hooks", "files", "permissions"])
@pytest.mark.parametrize("value", ["", "null", "~", "false"])
def test_absent_null_or_false_sections_are_empty(section: str, value: str) -> None:
    spec = accepted(f"{section}: {value}\n")
    assert getattr(spec, section) == ()


def test_all_errors_are_reported_at_once() -> None:
    result = parse_server_appspec(
        "version: 1\nos: plan9\nfile_exists_behavior: nope\nfiles:\n  - source: a\n"
    )
    keys = {d.key for d in result.errors}
    assert {"version", "os", "file_exists_behavior", "files[0].destination"} <= keys


# --- version (docs/codedeploy-agent.md#appspec-version) -------------------------------------


@pytest.mark.parametrize("value", ["0.0", "0", "0.00", "0.", "-0.0"])
def test_version_numbers_equal_to_zero_are_accepted(value: str) -> None:
    spec = accepted("", head=f"version: {value}\nos: linux\n")
    assert spec.version == 0.0 and isinstance(spec.version, float)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"0.0"', "quoted string"),
        ("'0.0'", "quoted string"),
        ("false", "unsupported version"),
        ("no", "unsupported version"),
        ("1.0", "unsupported version"),
        ("0.1", "unsupported version"),
        ("invalid", "unsupported version"),
        ("[0.0]", "unsupported version"),
        ("", "no value"),
    ],
)
def test_version_other_values_are_rejected(value: str, fragment: str) -> None:
    errors = rejected("", head=f"version: {value}\nos: linux\n")
    assert [d.key for d in errors] == ["version"]
    assert fragment in errors[0].message
    assert "version: 0.0" in errors[0].hint


def test_missing_version_is_rejected() -> None:
    errors = rejected("", head="os: linux\n")
    assert errors[0].key == "version"
    assert errors[0].value is None
    assert "no version" in errors[0].message


# --- os (docs/codedeploy-agent.md#appspec-os) -----------------------------------------------


def test_missing_os_is_rejected() -> None:
    errors = rejected("", head="version: 0.0\n")
    assert errors[0].key == "os" and errors[0].value is None
    assert "os: linux" in errors[0].hint


@pytest.mark.parametrize("value", ["windows", "Linux", "ubuntu", "", "1", "[linux]"])
def test_os_other_than_the_host_os_is_rejected_on_linux(value: str) -> None:
    assert error_keys("", head=f"version: 0.0\nos: {value}\n") == ["os"]


def test_os_windows_is_accepted_on_a_windows_host_and_linux_rejected() -> None:
    spec = accepted("", head="version: 0.0\nos: windows\n", host_os="windows")
    assert spec.os == "windows"
    assert error_keys("", head="version: 0.0\nos: linux\n", host_os="windows") == ["os"]


# --- file_exists_behavior (docs/codedeploy-agent.md#appspec-file-exists-behaviour) -------------


@pytest.mark.parametrize("value", ["DISALLOW", "OVERWRITE", "RETAIN"])
def test_file_exists_behavior_values(value: str) -> None:
    assert accepted(f"file_exists_behavior: {value}\n").file_exists_behavior == value


def test_file_exists_behavior_null_means_deployment_value() -> None:
    assert accepted("file_exists_behavior:\n").file_exists_behavior is None


@pytest.mark.parametrize("value", ["overwrite", "Retain", "KEEP", "1", "true"])
def test_file_exists_behavior_is_case_sensitive(value: str) -> None:
    errors = rejected(f"file_exists_behavior: {value}\n")
    assert errors[0].key == "file_exists_behavior"
    assert "DISALLOW, OVERWRITE or RETAIN" in errors[0].message
    if value == "overwrite":
        assert "OVERWRITE" in errors[0].hint


# --- hooks (docs/codedeploy-agent.md#appspec-hooks) -----------------------------------------


def test_hooks_keep_event_and_script_order_and_defaults() -> None:
    spec = accepted(
        """\
        hooks:
          BeforeInstall:
            - location: scripts/a.sh
            - location: scripts/b.sh
              timeout: 300
              runas: deploy
          ApplicationStart:
            - location: scripts/start.sh
        """
    )
    assert spec.hook_events == ("BeforeInstall", "ApplicationStart")
    assert spec.hook_scripts("BeforeInstall") == (
        HookScript("scripts/a.sh", 3600, None, False),
        HookScript("scripts/b.sh", 300, "deploy", False),
    )
    assert spec.hook_event_timeout("BeforeInstall") == 3900
    assert spec.hook_event_timeout("ValidateService") == 0


def test_null_event_is_dropped_and_empty_list_kept() -> None:
    spec = accepted("hooks:\n  ApplicationStop:\n  BeforeInstall: []\n")
    assert spec.hook_events == ("BeforeInstall",)
    assert spec.hook_scripts("BeforeInstall") == ()


def test_arbitrary_event_names_parse() -> None:
    spec = accepted("hooks:\n  test_hook:\n    - location: x.sh\n")
    assert spec.hook_scripts("test_hook") == (HookScript("x.sh"),)


@pytest.mark.parametrize(
    "hooks",
    [
        "hooks: []",
        "hooks: [a]",
        "hooks: text",
        "hooks: 0",
        "hooks: true",
    ],
)
def test_hooks_must_be_a_mapping(hooks: str) -> None:
    assert error_keys(hooks + "\n") == ["hooks"]


@pytest.mark.parametrize("scripts", ["scripts.sh", "5", "false", "{location: a}"])
def test_event_value_must_be_a_list(scripts: str) -> None:
    assert error_keys(f"hooks:\n  BeforeInstall: {scripts}\n") == ["hooks.BeforeInstall"]


def test_event_value_empty_mapping_iterates_like_empty_list() -> None:
    result = parse("hooks:\n  BeforeInstall: {}\n")
    assert result.ok
    assert result.warnings


@pytest.mark.parametrize(
    "entry",
    [
        "- timeout: 30",
        "- location:",
        "- location: null",
        "- location: ''",
        "- location: '   '",
    ],
)
def test_hook_script_without_location_is_rejected(entry: str) -> None:
    errors = rejected(f"hooks:\n  BeforeInstall:\n    {entry}\n")
    assert [d.key for d in errors] == ["hooks.BeforeInstall[0].location"]


@pytest.mark.parametrize("entry", ["- scripts/a.sh", "- [a]", "- 5", "-"])
def test_hook_script_must_be_a_mapping(entry: str) -> None:
    assert error_keys(f"hooks:\n  BeforeInstall:\n    {entry}\n") == ["hooks.BeforeInstall[0]"]


@pytest.mark.parametrize(
    ("written", "location"),
    [
        ("'  scripts/a.sh  '", "scripts/a.sh"),
        ("123", "123"),
        ("1.5", "1.5"),
        ("true", "true"),
        ("false", "false"),
    ],
)
def test_location_is_to_s_and_stripped(written: str, location: str) -> None:
    spec = accepted(f"hooks:\n  BeforeInstall:\n    - location: {written}\n")
    assert spec.hook_scripts("BeforeInstall")[0].location == location


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("30", 30),
        ('"30"', 30),
        ('"30s"', 30),
        ('" 45"', 45),
        ('"1_000"', 1000),
        ("1.9", 1),
        ('"+7"', 7),
        ("", 3600),
        ("null", 3600),
        ("false", 3600),
    ],
)
def test_timeout_uses_ruby_to_i(written: str, seconds: int) -> None:
    spec = accepted(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: {written}\n")
    assert spec.hook_scripts("BeforeInstall")[0].timeout == seconds


@pytest.mark.parametrize(
    "written",
    ["foo", '"foo"', "0", "-5", '"-5"', "0.9", '"0x10"', "true", "[30]", "{a: 1}", ".inf", ".nan"],
)
def test_timeout_that_is_not_positive_after_to_i_is_rejected(written: str) -> None:
    errors = rejected(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: {written}\n")
    assert [d.key for d in errors] == ["hooks.BeforeInstall[0].timeout"]
    assert "positive number of seconds" in errors[0].message
    assert errors[0].hint == "write e.g. timeout: 300"


@pytest.mark.parametrize(
    ("written", "runas"),
    [("deploy", "deploy"), ("'  deploy '", "deploy"), ("", None), ("null", None), ("0", "0")],
)
def test_runas_is_to_s_stripped_or_none(written: str, runas: str | None) -> None:
    spec = accepted(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      runas: {written}\n")
    assert spec.hook_scripts("BeforeInstall")[0].runas == runas


@pytest.mark.parametrize(
    ("written", "sudo"),
    [
        ("true", True),
        ("false", False),
        ("no", False),
        ("", False),
        ("null", False),
        ('"false"', True),
        ('"no"', True),
        ("0", True),
        ('""', True),
        ("yes", True),
        ("[]", True),
    ],
)
def test_sudo_uses_ruby_truthiness(written: str, sudo: bool) -> None:
    spec = accepted(f"hooks:\n  BeforeInstall:\n    - location: a.sh\n      sudo: {written}\n")
    assert spec.hook_scripts("BeforeInstall")[0].sudo is sudo


def test_hook_without_sudo_key_is_not_sudo() -> None:
    spec = accepted("hooks:\n  BeforeInstall:\n    - location: a.sh\n")
    assert spec.hook_scripts("BeforeInstall")[0].sudo is False


# --- files (docs/codedeploy-agent.md#appspec-files) -----------------------------------------


def test_files_keep_order() -> None:
    spec = accepted(
        "files:\n  - source: web\n    destination: /srv/web\n  - source: /\n    destination: /opt\n"
    )
    assert spec.files == (FileMapping("web", "/srv/web"), FileMapping("/", "/opt"))


def test_files_entry_without_source_is_rejected() -> None:
    errors = rejected("files:\n  - destination: /srv/web\n")
    assert [d.key for d in errors] == ["files[0].source"]
    assert "destination but no source" in errors[0].message


def test_files_entry_without_destination_echoes_the_source() -> None:
    errors = rejected("files:\n  - source: web\n")
    assert [d.key for d in errors] == ["files[0].destination"]
    assert "web" in errors[0].message


@pytest.mark.parametrize("entry", ["- web", "- [web, /srv]", "- 5", "-"])
def test_files_entry_must_be_a_mapping(entry: str) -> None:
    assert error_keys(f"files:\n  {entry}\n") == ["files[0]"]


@pytest.mark.parametrize("files", ["files: web", "files: 5", "files: {source: a}"])
def test_files_must_be_a_list(files: str) -> None:
    assert error_keys(files + "\n") == ["files"]


def test_files_empty_mapping_is_an_empty_list() -> None:
    assert accepted("files: {}\n").files == ()


def test_files_with_nonstring_paths_are_rejected_before_install() -> None:
    errors = rejected("files:\n  - source: [a]\n    destination: 5\n")
    assert {d.key for d in errors} == {"files[0].source", "files[0].destination"}
    assert any("quote it" in d.hint for d in errors)


def test_empty_source_is_accepted_like_the_reference() -> None:
    assert accepted("files:\n  - source: ''\n    destination: /srv\n").files[0].source == ""


@pytest.mark.parametrize("path", ["../x", "/../x", "a/../../x", "..", "a/b/../../../c", "//../x"])
def test_paths_climbing_out_of_the_revision_are_rejected_at_their_line(path: str) -> None:
    errors = rejected(
        f"files:\n  - source: '{path}'\n    destination: /srv\n"
        f"hooks:\n  BeforeInstall:\n    - location: '{path}'\n"
    )
    assert [(d.key, d.line) for d in errors] == [
        ("files[0].source", 4),
        ("hooks.BeforeInstall[0].location", 8),
    ]
    assert all("climbs out of the revision" in d.message for d in errors)


@pytest.mark.parametrize("path", ["/scripts/x.sh", "a/../b.sh", "./x/../y.sh", "..x/y.sh", "a/.."])
def test_paths_staying_inside_the_revision_are_accepted(path: str) -> None:
    spec = accepted(
        f"files:\n  - source: '{path}'\n    destination: /srv\n"
        f"hooks:\n  BeforeInstall:\n    - location: '{path}'\n"
    )
    assert spec.files[0].source == spec.hook_scripts("BeforeInstall")[0].location == path


def test_backslash_climbing_is_rejected_on_windows() -> None:
    head = "version: 0.0\nos: windows\n"
    body = "hooks:\n  BeforeInstall:\n    - location: '..\\evil.ps1'\n"
    assert error_keys(body, head, host_os="windows") == ["hooks.BeforeInstall[0].location"]
    # on Linux a backslash is part of a file name: `..\evil.ps1` is one file in the revision
    assert accepted(body).hook_scripts("BeforeInstall")[0].location == "..\\evil.ps1"


# --- permissions (docs/codedeploy-agent.md#appspec-permissions) -----------------------------


def test_permission_defaults() -> None:
    spec = accepted("permissions:\n  - object: /srv/web\n")
    (perm,) = spec.permissions
    assert perm.object == "/srv/web"
    assert perm.pattern == "**"
    assert perm.except_ == ()
    assert perm.type == ("file", "directory")
    assert (perm.owner, perm.group, perm.mode, perm.acls, perm.context) == (None,) * 5


def test_permission_fields_are_kept() -> None:
    spec = accepted(
        """\
        permissions:
          - object: ' /srv/web '
            pattern: "*.html"
            except: ["secret*", "tmp"]
            type: [file]
            owner: www-data
            group: www
        """
    )
    (perm,) = spec.permissions
    assert perm.object == "/srv/web"
    assert perm.pattern == "*.html"
    assert perm.except_ == ("secret*", "tmp")
    assert perm.type == ("file",)
    assert (perm.owner, perm.group) == ("www-data", "www")


@pytest.mark.parametrize("entry", ["- pattern: '**'", "- object:", "- object: ''", "- object: ' '"])
def test_permission_without_object_is_rejected(entry: str) -> None:
    errors = rejected(f"permissions:\n  {entry}\n")
    assert [d.key for d in errors] == ["permissions[0].object"]


@pytest.mark.parametrize(
    ("types", "bad"),
    [("[file, link]", "link"), ("[directory, File]", "File"), ("[5]", "5"), ("[[file]]", "")],
)
def test_unsupported_permission_type_is_rejected_and_echoed(types: str, bad: str) -> None:
    errors = rejected(f"permissions:\n  - object: /srv\n    type: {types}\n")
    assert len(errors) == 1 and errors[0].key.startswith("permissions[0].type[")
    assert bad in errors[0].message


@pytest.mark.parametrize("types", ["file", "directory", "other"])
def test_permission_type_must_be_a_list(types: str) -> None:
    errors = rejected(f"permissions:\n  - object: /srv\n    type: {types}\n")
    assert [d.key for d in errors] == ["permissions[0].type"]
    if types != "other":
        assert errors[0].hint == f"write type: [{types}]"


def test_permission_type_null_or_false_takes_the_default() -> None:
    for value in ("", "null", "false"):
        spec = accepted(f"permissions:\n  - object: /srv\n    type: {value}\n")
        assert spec.permissions[0].type == ("file", "directory")


def test_permission_except_must_be_a_list() -> None:
    assert error_keys("permissions:\n  - object: /srv\n    except: '*.log'\n") == [
        "permissions[0].except"
    ]


@pytest.mark.parametrize("body", ["permissions:\n  - object: /srv\n", "permissions:\n  - {}\n"])
def test_permissions_are_rejected_on_windows(body: str) -> None:
    errors = rejected(body, head="version: 0.0\nos: windows\n", host_os="windows")
    assert any("Windows" in d.message for d in errors)


def test_empty_permissions_are_fine_on_windows() -> None:
    assert accepted("permissions: []\n", head="version: 0.0\nos: windows\n", host_os="windows")


@pytest.mark.parametrize("entry", ["- /srv", "- [a]", "- 3"])
def test_permission_entry_must_be_a_mapping(entry: str) -> None:
    assert error_keys(f"permissions:\n  {entry}\n") == ["permissions[0]"]


def test_owner_must_be_a_string() -> None:
    errors = rejected("permissions:\n  - object: /srv\n    owner: 1000\n")
    assert errors[0].key == "permissions[0].owner"
    assert "quote it" in errors[0].hint
