"""Typed readers over the positioned YAML nodes of a workspace file.

Each reader returns the value, or None after reporting what is wrong at the node's line and
column with a hint saying what to write. `secret=True` keeps the value out of the diagnostic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from engine.appspec.document import Node
from engine.appspec.names import closest, did_you_mean
from engine.appspec.report import Reporter, key_path, shown
from engine.appspec.ruby import type_name

# Application, deployment group, instance and config names (docs/codedeploy-service.md#limits).
NAME_PATTERN = re.compile(r"[A-Za-z0-9._+=,@-]{1,100}")
NAME_RULE = "1 to 100 letters, digits or . _ + = , @ -"


def describe(node: Node, *, secret: bool = False) -> str:
    """`a mapping`, `a list`, `nothing`, `the integer 8080` (or `an integer` when secret)."""
    if node.is_mapping:
        return "a mapping"
    if node.is_sequence:
        return "a list"
    if node.is_null:
        return "nothing"
    kind = type_name(node.value)
    if secret:
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    text = shown(node) or ""
    return f"the {kind} {text!r}" if isinstance(node.value, str) else f"the {kind} {text}"


def is_number(node: Node) -> bool:
    """An unquoted int or float (YAML booleans are ints in Python, and are not numbers here)."""
    value = node.value
    return node.is_scalar and isinstance(value, int | float) and not isinstance(value, bool)


def leaf(name: str) -> str:
    """A key as it appears in a hint: quoted when YAML would not read it as a plain string."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", name) else f'"{name}"'


class Reader:
    def __init__(self, reporter: Reporter) -> None:
        self.r = reporter

    # --- reporting ------------------------------------------------------------------------

    def error(
        self, node: Node, path: str, message: str, hint: str, *, secret: bool = False
    ) -> None:
        if secret:
            self.r.error(node, path, message, hint, value=None)
        else:
            self.r.error(node, path, message, hint)

    def warning(self, node: Node, path: str, message: str, hint: str) -> None:
        self.r.warning(node, path, message, hint)

    def missing(self, anchor: Node, path: str, message: str, hint: str) -> None:
        """A required key is absent: reported at the mapping's own key (`anchor`)."""
        self.r.error(anchor, path, message, hint, value=None)

    def unknown_keys(self, node: Node, path: str, allowed: Sequence[str], where: str) -> None:
        for key, _value in node.pairs:
            if key.is_str and key.value in allowed:
                continue
            name = key.text if key.is_scalar else key.render()
            self.r.warning(
                key,
                key_path(path, name),
                f"unknown key {name!r} in {where}; it is ignored",
                did_you_mean(name, allowed),
                value=name,
            )

    # --- collections ----------------------------------------------------------------------

    def mapping(
        self, node: Node, path: str, what: str, example: str, *, null_ok: bool = True
    ) -> Node | None:
        """`node` when it is a mapping; None for null (the same as leaving the key out, unless
        not `null_ok`) and for anything else, which is reported."""
        if node.is_mapping:
            return node
        if not (null_ok and node.is_null):
            self.error(node, path, f"{what} must be a mapping (got {describe(node)})", example)
        return None

    def sequence(self, node: Node, path: str, what: str, example: str) -> tuple[Node, ...] | None:
        """The items of a list; () for null; None (reported) for anything else."""
        if node.is_sequence:
            return node.items
        if node.is_null:
            return ()
        self.error(node, path, f"{what} must be a list (got {describe(node)})", example)
        return None

    def named(self, section: Node, path: str, what: str) -> Iterator[tuple[str, Node, Node]]:
        """(name, key node, value node) for each entry whose name is valid."""
        for key, value in section.pairs:
            name = self.name(key, path, what)
            if name is not None:
                yield name, key, value

    def name(self, key: Node, path: str, what: str) -> str | None:
        """A valid name: a string of NAME_RULE (and not `.` or `..`, which are folders)."""
        label = key.text if key.is_scalar else key.render()
        at = key_path(path, label)
        name = self.key_string(key, at, what)
        if name is None:
            return None
        if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
            problem = "is too long" if len(name) > 100 else "is not allowed"
            if name and len(name) <= 100 and name not in (".", ".."):
                bad = sorted({ch for ch in name if not NAME_PATTERN.fullmatch(ch)})
                problem = f"contains {' '.join(repr(ch) for ch in bad)}"
            self.error(key, at, f"the {what} name {name!r} {problem}", f"use a name of {NAME_RULE}")
            return None
        return name

    def key_string(self, key: Node, at: str, what: str) -> str | None:
        """A mapping key used as a name must be a string (`1:` is the integer 1)."""
        if not key.is_str:
            if key.is_scalar and not key.is_null:
                self.error(
                    key,
                    at,
                    f"a {what} name must be a string (got {describe(key)})",
                    f'quote it: "{key.text}":',
                )
            else:
                self.error(
                    key,
                    at,
                    f"a {what} name must be a string (got {describe(key)})",
                    f"use a name of {NAME_RULE}",
                )
            return None
        return str(key.value)

    # --- scalars --------------------------------------------------------------------------

    def short_string(
        self,
        node: Node,
        path: str,
        field: str,
        example: str,
        limit: int,
        what: str,
        *,
        empty_ok: bool = False,
    ) -> str | None:
        """A string value (as `string`) of at most `limit` characters; `what` names it in the
        message for a longer one ("a tag key")."""
        value = self.string(node, path, field, example, empty_ok=empty_ok)
        if value is not None and len(value) > limit:
            self.error(
                node,
                path,
                f"{what} has at most {limit} characters (this one {len(value)})",
                f"use a shorter {leaf(field)}",
            )
            return None
        return value

    def string(
        self,
        node: Node,
        path: str,
        field: str,
        example: str,
        *,
        what: str | None = None,
        secret: bool = False,
        empty_ok: bool = False,
    ) -> str | None:
        """A string value; numbers and booleans are refused with a hint to quote them."""
        what = what or field
        if node.is_str and (empty_ok or node.value != ""):
            return str(node.value)
        if node.is_str:
            self.error(node, path, f"{what} is empty", f"write {leaf(field)}: {example}")
        elif node.is_scalar and not node.is_null:
            hint = (
                f'quote it: {leaf(field)}: "..."'
                if secret
                else f'quote it: {leaf(field)}: "{node.text}"'
            )
            self.error(
                node,
                path,
                f"{what} must be a string (got {describe(node, secret=secret)})",
                hint,
                secret=secret,
            )
        else:
            self.error(
                node,
                path,
                f"{what} must be a string (got {describe(node, secret=secret)})",
                f"write {leaf(field)}: {example}",
                secret=secret,
            )
        return None

    def choice(
        self, node: Node, path: str, field: str, choices: Sequence[str], *, item: bool = False
    ) -> str | None:
        """One of `choices`, spelt exactly; a near miss gets the right spelling as the hint.
        `item`: the node is a list entry, so the hint shows the bare value."""
        if node.is_str and node.value in choices:
            return str(node.value)
        one_of = ", ".join(choices)
        write = "write " if item else f"write {field}: "
        if node.is_str:
            guess = closest(str(node.value), choices)
            hint = f"{write}{guess}" if guess else f"write one of: {one_of}"
            message = f"{field} must be one of {one_of} (got {node.value!r})"
        else:
            hint = f"{write}{choices[0]} (or {', '.join(choices[1:])})"
            message = f"{field} must be one of {one_of} (got {describe(node)})"
        self.error(node, path, message, hint)
        return None

    def integer(
        self,
        node: Node,
        path: str,
        field: str,
        example: int,
        minimum: int,
        maximum: int | None = None,
    ) -> int | None:
        """A whole number in [minimum, maximum]; booleans and quoted numbers are refused."""
        value = node.value
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        if node.is_scalar and isinstance(value, int) and not isinstance(value, bool):
            if value >= minimum and (maximum is None or value <= maximum):
                return value
            self.error(
                node, path, f"{field} must be {bounds} (got {value})", f"write {field}: {example}"
            )
            return None
        self.error(
            node,
            path,
            f"{field} must be a whole number {bounds} (got {describe(node)})",
            f"write {field}: {example}",
        )
        return None

    def positive_number(
        self, node: Node, path: str, field: str, example: str, maximum: int = 10**9
    ) -> float | None:
        """A number of seconds above 0 and at most `maximum` (past it, clocks overflow)."""
        value = node.value
        if node.is_scalar and isinstance(value, int | float) and not isinstance(value, bool):
            if 0 < value <= maximum:
                return float(value)
            self.error(
                node,
                path,
                f"{field} must be a number greater than 0 and at most {maximum} "
                f"(got {shown(node)})",
                f"write {field}: {example}",
            )
            return None
        self.error(
            node,
            path,
            f"{field} must be a number of seconds greater than 0 (got {describe(node)})",
            f"write {field}: {example}",
        )
        return None

    def boolean(self, node: Node, path: str, field: str) -> bool | None:
        if node.is_scalar and isinstance(node.value, bool):
            return bool(node.value)
        hint = f"write {field}: true or {field}: false"
        word = node.value.strip().lower() if node.is_str else ""
        if word in ("true", "false", "yes", "no", "on", "off"):
            meant = "true" if word in ("true", "yes", "on") else "false"
            hint = f"remove the quotes: {field}: {meant}"
        self.error(node, path, f"{field} must be true or false (got {describe(node)})", hint)
        return None

    def choice_list(
        self, node: Node, path: str, field_name: str, choices: tuple[str, ...], example: str
    ) -> tuple[str, ...] | None:
        """A list of names from `choices`; one listed twice is a warning."""
        items = self.sequence(node, path, field_name, example)
        if items is None:
            return None
        found: list[str] = []
        ok = True
        for i, item in enumerate(items):
            name = self.choice(item, key_path(path, i), field_name, choices, item=True)
            if name is None:
                ok = False
            elif name in found:
                self.warning(
                    item, key_path(path, i), f"{name} is listed twice", "remove the repeat"
                )
            else:
                found.append(name)
        return tuple(found) if ok else None
