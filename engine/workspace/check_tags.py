"""Reading a deployment group's `tag_filters` and `tag_set`
(docs/codedeploy-service.md#deployment-groups)."""

from __future__ import annotations

from typing import Any

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.workspace.reader import Reader
from engine.workspace.tags import (
    MAX_TAG_GROUPS,
    TAG_FILTER_TYPES,
    TAG_KEY_MAX,
    TAG_VALUE_MAX,
    TagFilter,
    default_type,
)

TAG_FILTER_KEYS = ("key", "value", "type")
FILTER_EXAMPLE = "- {key: role, value: web}"


class TagChecker:
    def __init__(self, reader: Reader) -> None:
        self.read = reader

    def tag_filters(self, node: Node, path: str) -> tuple[TagFilter, ...] | None:
        items = self.read.sequence(
            node, path, "tag_filters", f"write tag_filters: then {FILTER_EXAMPLE}"
        )
        if items is None:
            return None
        found = [self.tag_filter(item, key_path(path, i)) for i, item in enumerate(items)]
        return None if None in found else tuple(found)  # type: ignore[arg-type]

    def tag_set(self, node: Node, path: str) -> tuple[tuple[TagFilter, ...], ...] | None:
        example = "write tag_set: then one `- - {key: role, value: web}` per tag group"
        groups = self.read.sequence(node, path, "tag_set", example)
        if groups is None:
            return None
        ok = True
        result: list[tuple[TagFilter, ...]] = []
        for i, group in enumerate(groups):
            at = key_path(path, i)
            if i == MAX_TAG_GROUPS:
                self.read.error(
                    group,
                    at,
                    f"a tag_set has at most {MAX_TAG_GROUPS} tag groups (this one has "
                    f"{len(groups)})",
                    "merge tag groups: filters inside one group are alternatives (OR)",
                )
                ok = False
            if group.is_mapping:
                self.read.error(
                    group,
                    at,
                    "each tag_set entry is a tag group: a list of filters",
                    "write it one level deeper, - - {key: role, value: web}, or use "
                    "tag_filters for a flat list",
                )
                ok = False
                continue
            items = self.read.sequence(group, at, "a tag group", example)
            if items is None:
                ok = False
                continue
            if not items:
                self.read.error(
                    group,
                    at,
                    "an empty tag group matches no instance (every group must match)",
                    "add a filter to it, or remove it",
                )
                ok = False
                continue
            found = [self.tag_filter(item, key_path(at, j)) for j, item in enumerate(items)]
            if None in found:
                ok = False
            else:
                result.append(tuple(found))  # type: ignore[arg-type]
        return tuple(result) if ok else None

    def tag_filter(self, node: Node, path: str) -> TagFilter | None:
        if (
            self.read.mapping(node, path, "a tag filter", f"write {FILTER_EXAMPLE}", null_ok=False)
            is None
        ):
            return None
        self.read.unknown_keys(node, path, TAG_FILTER_KEYS, "a tag filter")
        key_node, value_node = node.get("key"), node.get("value")
        key = value = None
        ok = True
        if key_node is not None:
            key = self.read.short_string(
                key_node, key_path(path, "key"), "key", "role", TAG_KEY_MAX, "a tag key"
            )
            ok = ok and key is not None
        if value_node is not None:
            value = self.read.short_string(
                value_node,
                key_path(path, "value"),
                "value",
                "web",
                TAG_VALUE_MAX,
                "a tag value",
                empty_ok=True,
            )
            ok = ok and value is not None
        type_node = node.get("type")
        kind: Any = None
        if type_node is not None:
            kind = self.read.choice(type_node, key_path(path, "type"), "type", TAG_FILTER_TYPES)
            if kind is None:
                return None
        if not ok:
            return None
        if key_node is None and value_node is None:
            self.read.missing(
                node, path, "a tag filter needs a key, a value or both", f"write {FILTER_EXAMPLE}"
            )
            return None
        kind = kind or default_type(key, value)
        needs = {"KEY_ONLY": ("key",), "VALUE_ONLY": ("value",)}.get(kind, ("key", "value"))
        for field_name in needs:
            if node.get(field_name) is None:
                self.read.missing(
                    node,
                    key_path(path, field_name),
                    f"a {kind} tag filter needs a {field_name}",
                    f"add {field_name}: to the filter, or change its type",
                )
                return None
        for field_name, field_node in (("key", key_node), ("value", value_node)):
            if field_node is not None and field_name not in needs:
                self.read.warning(
                    field_node,
                    key_path(path, field_name),
                    f"a {kind} filter ignores its {field_name}",
                    f"remove {field_name}, or write type: KEY_AND_VALUE to match the pair",
                )
        return TagFilter(key if "key" in needs else None, value if "value" in needs else None, kind)
