"""POSIX ACL entries from a permission's `acls` list, read as the reference agent does
(docs/codedeploy-agent.md#permission-acls).

An entry is split on `:` (empty fields kept) and read right to left: permissions, name, type,
default marker. The canonical form is `[default:]<user|group|mask|other>:<name>:<r|-><w|-><x|->`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.appspec.report import InvalidValue

_DEFAULT = frozenset({"d", "default"})
_TYPES = {
    "u": "user",
    "user": "user",
    "g": "group",
    "group": "group",
    "m": "mask",
    "mask": "mask",
    "o": "other",
    "other": "other",
}
_FORMS = (
    "write [d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]]:<name>:<perms>, "
    "e.g. user:bob:rw-, group:ops:r-x or default:user:bob:rwx"
)


@dataclass(frozen=True)
class AclEntry:
    """One ACL entry; `type` is user, group, mask or other; `name` is empty for unnamed ones."""

    default: bool
    type: str
    name: str
    read: bool
    write: bool
    execute: bool

    @property
    def canonical(self) -> str:
        perms = ("r" if self.read else "-") + ("w" if self.write else "-")
        perms += "x" if self.execute else "-"
        return f"{'default:' if self.default else ''}{self.type}:{self.name}:{perms}"

    def __str__(self) -> str:
        return self.canonical


def parse_acl_entry(entry: str) -> AclEntry:
    """Parse one entry exactly as the reference; InvalidValue for what it rejects."""
    parts = entry.split(":")[::-1]
    if not 2 <= len(parts) <= 4:
        raise InvalidValue(
            f"ACL entry {entry!r} has {len(parts)} ':'-separated fields; 2 to 4 are allowed",
            _FORMS,
        )
    default = False
    kind: str | None = None
    name = ""
    if len(parts) == 4:
        if parts[3] not in _DEFAULT:
            raise InvalidValue(
                f"ACL entry {entry!r}: with four fields the first must be d or default "
                f"(got {parts[3]!r})",
                _FORMS,
            )
        default = True
    if len(parts) >= 3:
        if parts[2] in _DEFAULT:
            if default:
                raise InvalidValue(f"ACL entry {entry!r} gives the default marker twice", _FORMS)
            default = True
        elif parts[2] in _TYPES:
            kind = _TYPES[parts[2]]
        else:
            raise InvalidValue(
                f"ACL entry {entry!r}: {parts[2]!r} is not an ACL type "
                "(user, group, mask, other or u, g, m, o)",
                _FORMS,
            )
    # The name field doubles as the type for mask/other when no type was given.
    if parts[1] in ("m", "mask", "o", "other"):
        if kind is None:
            kind = _TYPES[parts[1]]
        else:
            name = _TYPES[parts[1]]
    else:
        if kind is None:
            kind = "user"
        name = parts[1]
    if kind in ("mask", "other") and name:
        raise InvalidValue(
            f"ACL entry {entry!r}: a {kind} entry cannot name a user or group ({name!r})",
            f"write {'default:' if default else ''}{kind}::<perms>",
        )
    if not default and kind != "mask" and not name:
        raise InvalidValue(
            f"ACL entry {entry!r} is a base entry (no user or group name); base entries come "
            "from the permission's mode",
            "set the owner/group/other bits with `mode`, and use acls only for named users and "
            "groups, e.g. user:bob:rw-",
        )
    read, write, execute = _perms(entry, parts[0])
    return AclEntry(default, kind, name, read, write, execute)


def _perms(entry: str, field: str) -> tuple[bool, bool, bool]:
    if len(field) == 1 and "0" <= field <= "7":
        bits = int(field)
        return bool(bits & 4), bool(bits & 2), bool(bits & 1)
    for char in field:
        if char not in "rwx-":
            raise InvalidValue(
                f"ACL entry {entry!r} contains {char!r} in its permissions; only r, w, x, - "
                "or a single digit 0-7 are allowed",
                "write the permissions as e.g. rw-, r-x or 6",
            )
    return "r" in field, "w" in field, "x" in field
