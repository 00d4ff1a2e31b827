"""Permission matching and ACL completion for Install (docs/codedeploy-agent.md#permission-acls,
docs/codedeploy-agent.md#applying-permissions)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional

_DIGIT_PERMS = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"]


def simple_glob_matches(name: str, pattern: str) -> bool:
    """The agent's simple glob: `*` matches any run of characters, all else is literal."""
    if "/" in name:
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


def _relative_below(path: str, base: str) -> Optional[str]:
    base = base if base.endswith("/") else base + "/"
    path = path.rstrip("/")
    return path[len(base) :] if path.startswith(base) else None


def matches(permission: Dict, obj: str, path: str) -> bool:
    """Whether installed `path` is selected by a permission entry whose object is `obj`.

    `**` selects every depth below the object; any other pattern only direct children.
    `except` globs only ever exclude direct children (their names have no "/").
    """
    relative = _relative_below(path, obj)
    if not relative:
        return False
    pattern = permission.get("pattern") or "**"
    if pattern != "**" and not simple_glob_matches(relative, pattern):
        return False
    return not any(simple_glob_matches(relative, e) for e in permission.get("except") or [])


def has_default_acl(acls: Optional[List[str]]) -> bool:
    return any(entry.startswith("default:") for entry in acls or [])


def complete_acl(acls: List[str], st_mode: int) -> List[str]:
    """Add the base entries setfacl --set needs, derived from the file's current mode."""
    bits = st_mode & 0o777
    user, group, other = (_DIGIT_PERMS[(bits >> s) & 7] for s in (6, 3, 0))
    entries = list(acls)
    access = [e for e in entries if not e.startswith("default:")]
    defaults = [e[len("default:") :] for e in entries if e.startswith("default:")]
    entries += ["user::" + user, "group::" + group, "other::" + other]
    if _has_named(access) and not _has_kind(access, "mask"):
        entries.append("mask::" + group)
    if defaults:
        if not _has_base(defaults, "user"):
            entries.append("default:user::" + user)
        default_group = next((e for e in defaults if e.startswith("group::")), None)
        if default_group is None:
            default_group = "group::" + group
            entries.append("default:" + default_group)
        if not _has_base(defaults, "other"):
            entries.append("default:other::" + other)
        if _has_named(defaults) and not _has_kind(defaults, "mask"):
            entries.append("default:mask::" + default_group.split(":")[2])
    return entries


def _has_named(entries: List[str]) -> bool:
    return any(e.split(":")[0] in ("user", "group") and e.split(":")[1] for e in entries)


def _has_kind(entries: List[str], kind: str) -> bool:
    return any(e.split(":")[0] == kind for e in entries)


def _has_base(entries: List[str], kind: str) -> bool:
    return any(e.split(":")[0] == kind and not e.split(":")[1] for e in entries)
