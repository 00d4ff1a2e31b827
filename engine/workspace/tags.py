"""Tag filters: which instances a Server deployment group targets
(docs/codedeploy-service.md#deployment-groups).

A flat `tag_filters` list matches an instance that matches ANY filter. A `tag_set` is up to three
groups of filters: an instance must match at least one filter of EVERY group (OR within a group,
AND across groups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

TagFilterType = Literal["KEY_ONLY", "VALUE_ONLY", "KEY_AND_VALUE"]
TAG_FILTER_TYPES: tuple[str, ...] = ("KEY_AND_VALUE", "KEY_ONLY", "VALUE_ONLY")
MAX_TAG_GROUPS = 3
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256


@dataclass(frozen=True)
class TagFilter:
    """KEY_ONLY matches an instance having `key`; VALUE_ONLY one having any tag whose value is
    `value`; KEY_AND_VALUE the exact pair. Tags are case-sensitive, as in CodeDeploy."""

    key: str | None
    value: str | None
    type: TagFilterType

    def matches(self, tags: Mapping[str, str]) -> bool:
        if self.type == "KEY_ONLY":
            return self.key in tags
        if self.type == "VALUE_ONLY":
            return self.value in tags.values()
        return self.key in tags and tags[self.key] == self.value  # type: ignore[index]

    def __str__(self) -> str:
        if self.type == "KEY_ONLY":
            return f"{self.key}=*"
        if self.type == "VALUE_ONLY":
            return f"*={self.value}"
        return f"{self.key}={self.value}"


def default_type(key: str | None, value: str | None) -> TagFilterType:
    """The type CodeDeploy infers when none is written: both given -> the pair, else the one."""
    if key is not None and value is not None:
        return "KEY_AND_VALUE"
    return "KEY_ONLY" if key is not None else "VALUE_ONLY"


def matches_any(filters: Sequence[TagFilter], tags: Mapping[str, str]) -> bool:
    return any(f.matches(tags) for f in filters)


def matches_tag_set(tag_set: Sequence[Sequence[TagFilter]], tags: Mapping[str, str]) -> bool:
    """AND across groups, OR within each; an empty tag set matches nothing."""
    return bool(tag_set) and all(matches_any(group, tags) for group in tag_set)
