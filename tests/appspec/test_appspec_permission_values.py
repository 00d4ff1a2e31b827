"""`mode` (docs/codedeploy-agent.md#permission-mode), `acls`
(docs/codedeploy-agent.md#permission-acls) and SELinux `context`
(docs/codedeploy-agent.md#permission-selinux-context) of a permissions entry."""

from __future__ import annotations

import pytest

from engine.appspec import (
    AclEntry,
    Diagnostic,
    Permission,
    SelinuxContext,
    SelinuxRange,
    parse_acl_entry,
    parse_range,
    parse_server_appspec,
)
from engine.appspec.mode import describe_bits, normalize_mode
from engine.appspec.report import InvalidValue

HEAD = "version: 0.0\nos: linux\npermissions:\n  - object: /srv/web\n"


def permission(extra: str) -> Permission:
    result = parse_server_appspec(HEAD + extra)
    assert result.ok, [str(d) for d in result.errors]
    assert result.appspec is not None
    return result.appspec.permissions[0]


def errors(extra: str) -> tuple[Diagnostic, ...]:
    result = parse_server_appspec(HEAD + extra)
    assert not result.ok
    return result.errors


# --- mode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "mode"),
    [
        ("12", "012"),
        ("7777", "7777"),
        ('"0000"', "0000"),
        ("0000", "000"),
        ("777", "777"),
        ("6763", "6763"),
        ('"0644"', "0644"),
        ("'755'", "755"),
        ("0", "000"),
        ("7", "007"),
    ],
)
def test_mode_examples_are_accepted(written: str, mode: str) -> None:
    assert permission(f"    mode: {written}\n").mode == mode


def test_mode_6763_bits() -> None:
    # setuid + setgid, owner rwx, group rw-, other -wx
    assert describe_bits(int(normalize_mode(6763), 8)) == "rwsrwS-wx"


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("12345", "1 to 4 octal digits"),
        ('"00000"', "1 to 4 octal digits"),
        ("12a", "'a'"),
        ("'8'", "'8'"),
        ("-1", "'-'"),
        ("6.44", "'.'"),
        ("rwx", "'r'"),
        ("true", "'t'"),
        ("false", "1 to 4 octal digits"),
        ("[644]", "octal digits"),
    ],
)
def test_mode_rejections_echo_the_problem(written: str, fragment: str) -> None:
    (error,) = errors(f"    mode: {written}\n")
    assert error.key == "permissions[0].mode"
    assert fragment in error.message
    assert "mode:" in error.hint


def test_normalize_mode_raises_invalid_value_with_the_char() -> None:
    with pytest.raises(InvalidValue, match="'a'"):
        normalize_mode("12a")
    with pytest.raises(InvalidValue, match="1 to 4"):
        normalize_mode(12345)


def test_unquoted_0644_is_accepted_as_mode_420_with_a_warning() -> None:
    result = parse_server_appspec(HEAD + "    mode: 0644\n")
    assert result.ok and result.appspec is not None
    assert result.appspec.permissions[0].mode == "420"
    (warning,) = result.warnings
    assert (warning.line, warning.column) == (5, 11)
    assert warning.key == "permissions[0].mode"
    assert warning.value == "0644"
    assert "octal" in warning.message and "420" in warning.message
    assert "r---w----" in warning.message  # the bits actually applied
    assert 'mode: "0644"' in warning.hint


def test_unquoted_0755_is_an_error_that_explains_the_octal_trap() -> None:
    (error,) = errors("    mode: 0755\n")
    assert error.value == "0755"
    assert "493" in error.message and "'9'" in error.message and "octal" in error.message
    assert 'quote it: mode: "0755"' in error.hint


def test_quoted_leading_zero_mode_has_no_warning() -> None:
    result = parse_server_appspec(HEAD + '    mode: "0644"\n')
    assert result.ok and not result.warnings


def test_other_unquoted_integer_spellings_are_explained() -> None:
    result = parse_server_appspec(HEAD + "    mode: 0x1a4\n")
    assert result.ok and result.appspec is not None
    assert result.appspec.permissions[0].mode == "420"
    (warning,) = result.warnings
    assert "integer 420" in warning.message
    (error,) = errors("    mode: 0x1ed\n")
    assert "493" in error.message and 'mode: "0x1ed"' in error.hint


# --- acls -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("user:bob:rw-", "user:bob:rw-"),
        ("u:bob:rwx", "user:bob:rwx"),
        ("bob:r", "user:bob:r--"),
        ("bob:6", "user:bob:rw-"),
        ("bob:", "user:bob:---"),
        ("g:ops:r-x", "group:ops:r-x"),
        ("group:ops:5", "group:ops:r-x"),
        ("m::rw", "mask::rw-"),
        ("mask:rw", "mask::rw-"),
        ("m:7", "mask::rwx"),
        ("d:bob:rwx", "default:user:bob:rwx"),
        ("default::rw", "default:user::rw-"),
        ("d:u::rwx", "default:user::rwx"),
        ("default:group:ops:r", "default:group:ops:r--"),
        ("d:g::r", "default:group::r--"),
        ("d:o::r", "default:other::r--"),
        ("d:other:r", "default:other::r--"),
        ("d:mask:rwx", "default:mask::rwx"),
        ("u:m:rw", "user:mask:rw-"),
        ("g:other:x", "group:other:--x"),
        ("user:bob:xwr", "user:bob:rwx"),
        ("user:bob:r-r", "user:bob:r--"),
        ("user:bob:0", "user:bob:---"),
    ],
)
def test_acl_entries_are_read_right_to_left_into_canonical_form(entry: str, canonical: str) -> None:
    assert str(parse_acl_entry(entry)) == canonical
    perm = permission(f'    acls: ["{entry}"]\n')
    assert perm.acls is not None
    assert [a.canonical for a in perm.acls] == [canonical]


def test_acl_entry_fields() -> None:
    assert parse_acl_entry("d:g:ops:5") == AclEntry(True, "group", "ops", True, False, True)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("rwx", "fields"),  # 1 field
        ("a:b:c:d:e", "fields"),  # 5 fields
        ("", "fields"),
        ("x:u:bob:rw", "d or default"),  # 4 fields without default marker
        ("d:d:bob:rw", "twice"),
        ("default:d:bob:rw", "twice"),
        ("z:bob:rw", "not an ACL type"),
        ("m:bob:rw", "cannot name"),
        ("o:bob:r", "cannot name"),
        ("d:mask:bob:rw", "cannot name"),
        ("u::rw", "base entry"),
        ("g::r", "base entry"),
        ("o::r", "base entry"),
        ("other:r", "base entry"),
        (":rw", "base entry"),
        ("user:bob:rwz", "'z'"),
        ("user:bob:8", "'8'"),
        ("user:bob:66", "'6'"),
        ("user:bob:R", "'R'"),
    ],
)
def test_invalid_acl_entries_are_rejected(entry: str, fragment: str) -> None:
    with pytest.raises(InvalidValue, match=None) as caught:
        parse_acl_entry(entry)
    assert fragment in caught.value.message
    (error,) = errors(f'    acls: ["{entry}"]\n')
    assert error.key == "permissions[0].acls[0]"
    assert error.value == entry
    assert fragment in error.message


def test_acls_absent_is_none_and_empty_list_is_empty() -> None:
    assert permission("").acls is None
    assert permission("    acls: []\n").acls == ()


@pytest.mark.parametrize("acls", ["user:bob:rw-", "false", "5", "[5]", "[[a]]"])
def test_acls_must_be_a_list_of_strings(acls: str) -> None:
    (error,) = errors(f"    acls: {acls}\n")
    assert error.key.startswith("permissions[0].acls")


def test_every_bad_acl_entry_is_reported() -> None:
    found = errors('    acls: ["u::rw", "user:bob:rw-", "bob:q"]\n')
    assert [d.key for d in found] == ["permissions[0].acls[0]", "permissions[0].acls[2]"]


# --- context --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high", "categories", "canonical"),
    [
        ("s0", 0, 0, None, "s0"),
        ("s0-s0", 0, 0, None, "s0"),
        ("s0-s15", 0, 15, None, "s0-s15"),
        ("s00", 0, 0, None, "s0"),
        ("s2:c1", 2, 2, (1,), "s2:c1"),
        ("s0:c0.c3", 0, 0, (0, 1, 2, 3), "s0:c0.c3"),
        ("s0-s1:c1,c3.c5,c7", 0, 1, (1, 3, 4, 5, 7), "s0-s1:c1,c3.c5,c7"),
        ("s0:c5,c1,c2", 0, 0, (1, 2, 5), "s0:c1.c2,c5"),
        ("s0:c1023", 0, 0, (1023,), "s0:c1023"),
        ("s0:c0.c1023", 0, 0, tuple(range(1024)), "s0:c0.c1023"),
        ("s0:c1,", 0, 0, (1,), "s0:c1"),  # Ruby's split drops trailing empty fields
        ("s0:c3.c3", 0, 0, (3,), "s0:c3"),
    ],
)
def test_accepted_ranges(
    text: str, low: int, high: int, categories: tuple[int, ...] | None, canonical: str
) -> None:
    parsed = parse_range(text)
    assert parsed == SelinuxRange(low, high, categories)
    assert parsed.canonical == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "malformed part"),
        ("s0:", "malformed part"),
        (":c1", "malformed part"),
        ("s0-", "malformed part"),
        ("-s1", "malformed part"),
        ("x0", "malformed sensitivity"),
        ("s", "malformed sensitivity"),
        ("sa", "malformed sensitivity"),
        ("s0-s1-s2", "malformed sensitivity"),
        ("s0-t1", "malformed sensitivity"),
        ("s 0", "malformed sensitivity"),
        ("s0:x1", "malformed category"),
        ("s0:c", "malformed category"),
        ("s0:c1024", "malformed category"),
        ("s0:c1:c2", "malformed category"),
        ("s0:,c1", "malformed category"),
        ("s0:c1,,c2", "malformed category"),
        ("s0:c1.", "malformed part"),
        ("s0:c1..c3", "malformed category"),
        ("s0:c1.c2.c3", "malformed category"),
        ("s0:c5.c2", "ends below its start"),
        ("s0:c1,c1", "more than once"),
        ("s0:c1.c3,c2", "more than once"),
        ("s5-s2", "below the low"),
    ],
)
def test_rejected_ranges(text: str, fragment: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_range(text)
    assert fragment in caught.value.message
    (error,) = errors(f"    context:\n      type: t\n      range: '{text}'\n")
    assert error.key == "permissions[0].context.range"
    assert fragment in error.message


def test_context_without_range_is_accepted() -> None:
    perm = permission("    context:\n      type: httpd_sys_content_t\n")
    assert perm.context == SelinuxContext("httpd_sys_content_t", None, None)
    assert perm.context.role is None


def test_context_with_name_and_range() -> None:
    perm = permission("    context:\n      name: system_u\n      type: t\n      range: s0:c0.c2\n")
    assert perm.context == SelinuxContext("t", "system_u", SelinuxRange(0, 0, (0, 1, 2)))


@pytest.mark.parametrize(
    "context",
    ["    context:\n      name: u\n", "    context: {}\n", "    context:\n      type:\n"],
)
def test_context_without_type_is_rejected(context: str) -> None:
    (error,) = errors(context)
    assert error.key == "permissions[0].context.type"
    assert "no type" in error.message


@pytest.mark.parametrize("context", ["httpd_t", "[httpd_t]", "false"])
def test_context_must_be_a_mapping(context: str) -> None:
    (error,) = errors(f"    context: {context}\n")
    assert error.key == "permissions[0].context"


def test_range_must_be_a_string() -> None:
    (error,) = errors("    context:\n      type: t\n      range: 5\n")
    assert error.key == "permissions[0].context.range"


def test_context_role_is_ignored_with_a_warning() -> None:
    result = parse_server_appspec(HEAD + "    context:\n      type: t\n      role: object_r\n")
    assert result.ok
    assert [w.key for w in result.warnings] == ["permissions[0].context.role"]
