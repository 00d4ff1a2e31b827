"""The `version` every appspec carries: the number 0.0 (docs/codedeploy-agent.md#appspec-version).

Accepted are values equal to the float 0.0 (`0.0`, `0`, `0.00`); a boolean is not a number here,
and a quoted `"0.0"` is a string, which the reference rejects.
"""

from __future__ import annotations

from engine.appspec.document import Node
from engine.appspec.report import Reporter, shown

SUPPORTED_VERSION = 0.0
_HINT = "write version: 0.0 (unquoted)"


def is_supported_version(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0.0


def check_version(
    root: Node, pair: tuple[Node, Node] | None, reporter: Reporter, key: str = "version"
) -> float | None:
    """The version, or None after reporting why it is not acceptable."""
    if pair is None:
        reporter.error(root, key, "the appspec has no version", _HINT, value=None)
        return None
    node = pair[1]
    if node.is_scalar and is_supported_version(node.value):
        return SUPPORTED_VERSION
    if node.is_null:
        reporter.error(node if node.text else pair[0], key, "version has no value", _HINT)
    elif node.is_str and is_supported_version(_number(node.value)):
        reporter.error(
            node,
            key,
            f"version is the quoted string {node.value!r}; only the number 0.0 is accepted",
            "remove the quotes: version: 0.0",
        )
    else:
        reporter.error(
            node, key, f"unsupported version (got {shown(node)!r}); it must be 0.0", _HINT
        )
    return None


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
