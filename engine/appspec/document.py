"""A YAML (or JSON) document as a tree of positioned nodes.

PyYAML composes the node tree (each node keeps its start mark; with libyaml where it is installed
and the text has nothing to report, else with its SafeLoader's own parser), and each scalar is
constructed with SafeConstructor, so YAML 1.1 typing is exactly PyYAML's (and, for the scalars an
appspec uses, Ruby's): unquoted `0644` is the int 420, `0.0` a float, `yes` a bool, `"0.0"` a str.
Each node also keeps its text as written and whether it was quoted, for warnings such as the
octal-mode trap. Mappings are de-duplicated like PyYAML and Ruby (the last value wins) with a
warning naming both lines. Nothing here raises on bad input: syntax errors become diagnostics.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from engine.appspec.report import Reporter, key_path
from engine.appspec.ruby import MAX_DIGITS

NodeKind = Literal["scalar", "mapping", "sequence"]

# Scalar tags SafeConstructor can build; anything else is read as if untagged.
_INT_TAG = "tag:yaml.org,2002:int"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("null", "bool", "int", "float", "str", "timestamp", "binary")
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TOO_DEEP_HINT = "an appspec needs only a few levels of nesting; remove the extra brackets"


@dataclass(frozen=True, eq=False)
class Node:
    """One value of the document with its 1-based position.

    Scalars carry `value` (the constructed Python value), `text` (the scalar as written, without
    quotes) and `quoted` (written quoted or as a block scalar, so YAML typed it as a string).
    Mappings carry `pairs` (key node, value node) with duplicate keys already resolved (last
    wins, at the position of the first); sequences carry `items`.
    """

    kind: NodeKind
    line: int
    column: int
    value: Any = None
    text: str = ""
    quoted: bool = False
    items: tuple[Node, ...] = ()
    pairs: tuple[tuple[Node, Node], ...] = ()

    @property
    def is_scalar(self) -> bool:
        return self.kind == "scalar"

    @property
    def is_mapping(self) -> bool:
        return self.kind == "mapping"

    @property
    def is_sequence(self) -> bool:
        return self.kind == "sequence"

    @property
    def is_null(self) -> bool:
        return self.kind == "scalar" and self.value is None

    @property
    def is_str(self) -> bool:
        return self.kind == "scalar" and isinstance(self.value, str)

    def get(self, key: str) -> Node | None:
        """The value node of string key `key` in a mapping, or None."""
        pair = self.get_pair(key)
        return pair[1] if pair else None

    def get_pair(self, key: str) -> tuple[Node, Node] | None:
        for k, v in self.pairs:
            if k.is_str and k.value == key:
                return k, v
        return None

    def render(self, limit: int = 80) -> str:
        """A short one-line rendering for messages: scalars as written, collections in flow
        style, cut at `limit` characters."""
        out: list[str] = []
        _render(self, out, [limit])
        text = "".join(out)
        return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _render(node: Node, out: list[str], budget: list[int]) -> None:
    # Stops early once the budget is spent, so shared (aliased) subtrees cannot blow up.
    if budget[0] <= 0:
        return
    if node.is_scalar:
        piece = _scalar_repr(node)
        out.append(piece)
        budget[0] -= len(piece)
    elif node.is_sequence:
        out.append("[")
        for i, item in enumerate(node.items):
            if i:
                out.append(", ")
            _render(item, out, budget)
            if budget[0] <= 0:
                break
        out.append("]")
    else:
        out.append("{")
        for i, (k, v) in enumerate(node.pairs):
            if i:
                out.append(", ")
            _render(k, out, budget)
            out.append(": ")
            _render(v, out, budget)
            if budget[0] <= 0:
                break
        out.append("}")


def _scalar_repr(node: Node) -> str:
    text = node.text.replace("\n", "\\n")
    if node.quoted or not text:
        return json.dumps(node.text) if node.quoted else "null"
    return text


@dataclass(frozen=True)
class LoadedDocument:
    """The root node (None when the document is empty or unreadable) and whether loading failed."""

    root: Node | None
    failed: bool = False
    kind: Literal["yaml", "json"] = "yaml"


def load_document(text: str, reporter: Reporter) -> LoadedDocument:
    """Read `text` as YAML (JSON is flow YAML). When PyYAML rejects a JSON-looking document
    (`.json` file name, or text starting with `{`/`[`), fall back to the JSON parser and report
    its error position instead."""
    yaml_reporter = reporter.child()
    loaded = _load_yaml(text, yaml_reporter)
    if not loaded.failed:
        reporter.extend(yaml_reporter)
        return loaded
    if reporter.file.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        json_reporter = reporter.child()
        json_loaded = _load_json(text, json_reporter)
        if not json_loaded.failed or reporter.file.lower().endswith(".json"):
            reporter.extend(json_reporter)
            return json_loaded
    reporter.extend(yaml_reporter)
    return loaded


# --- YAML -------------------------------------------------------------------------------------


def _load_yaml(text: str, reporter: Reporter) -> LoadedDocument:
    composed = _compose_with_libyaml(text)
    if composed is None:
        return _load_yaml_in_python(text, reporter)
    loader, root_yaml, extra = composed
    try:
        if extra is not None:
            _more_documents(reporter, extra.start_mark.line + 1)
        return _build(loader, root_yaml, text, reporter)
    finally:
        loader.dispose()


def _build(
    loader: yaml.SafeLoader | yaml.CSafeLoader,
    root: yaml.Node | None,
    text: str,
    reporter: Reporter,
) -> LoadedDocument:
    if root is None:
        return LoadedDocument(None)
    try:
        return LoadedDocument(_YamlBuilder(loader, text, reporter).build(root))
    except RecursionError:
        reporter.error_at(
            1, 1, "", "the document is nested too deeply to read", None, _TOO_DEEP_HINT
        )
        return LoadedDocument(None, failed=True)


def _more_documents(reporter: Reporter, line: int) -> None:
    """Like Ruby's YAML.load, only the first document counts; say so if there are more."""
    reporter.warning_at(
        line,
        1,
        "",
        "this file holds more than one YAML document; only the first is read",
        None,
        "remove the `---` separator and everything after the first document",
    )


def _compose_with_libyaml(
    text: str,
) -> tuple[yaml.CSafeLoader, yaml.Node | None, yaml.Node | None] | None:
    """(the loader, the first document's node tree, the second's) as libyaml composes them, ten
    times faster than PyYAML's parser (a workspace of 200 instances: 9 ms, not 90); None where
    libyaml is missing or anything in the text is to be reported: PyYAML's own parser then
    reads it again, so every diagnostic is the same with or without libyaml. Both make the
    same nodes (tags, values, styles, marks): tests/appspec/test_yaml_composers.py."""
    if not yaml.__with_libyaml__:
        return None
    loader = yaml.CSafeLoader(text)
    try:
        root = loader.get_node() if loader.check_node() else None
        extra = loader.get_node() if root is not None and loader.check_node() else None
    except Exception:  # any error is for PyYAML's parser to report
        loader.dispose()
        return None
    return loader, root, extra


def _load_yaml_in_python(text: str, reporter: Reporter) -> LoadedDocument:
    try:
        loader = yaml.SafeLoader(text)  # the reader checks for unprintable characters here
    except yaml.YAMLError as exc:
        _report_yaml_error(exc, text, reporter)
        return LoadedDocument(None, failed=True)
    try:
        try:
            root_yaml = loader.get_node() if loader.check_node() else None
        except yaml.YAMLError as exc:
            _report_yaml_error(exc, text, reporter)
            return LoadedDocument(None, failed=True)
        except (ValueError, OverflowError):
            # PyYAML's scanner turns an escape like "\U00110000" into chr() and lets it raise.
            mark = loader.get_mark()
            reporter.error_at(
                mark.line + 1,
                mark.column + 1,
                "",
                "YAML syntax error: an escape sequence names a character that does not exist",
                None,
                "use a \\u or \\U escape below \\U0010FFFF, or write the character itself",
            )
            return LoadedDocument(None, failed=True)
        except RecursionError:
            reporter.error_at(
                1, 1, "", "the document is nested too deeply to read", None, _TOO_DEEP_HINT
            )
            return LoadedDocument(None, failed=True)
        try:
            if root_yaml is not None and loader.check_node():
                extra = loader.get_node()
                line = extra.start_mark.line + 1 if extra is not None else 1
                _more_documents(reporter, line)
        except (yaml.YAMLError, RecursionError, ValueError, OverflowError):
            reporter.warning_at(
                1,
                1,
                "",
                "text after the first YAML document cannot be read and is ignored",
                None,
                "remove everything after the first document",
            )
        return _build(loader, root_yaml, text, reporter)
    finally:
        loader.dispose()


_YAML_HINTS: tuple[tuple[str, str], ...] = (
    ("found character '\\t'", "indent with spaces; YAML does not allow tabs for indentation"),
    (
        "mapping values are not allowed",
        "check the indentation, and quote values that contain ': '",
    ),
    ("could not find expected ':'", "write each key as `key: value`, or quote the value"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("expected <block end>", "check that entries at the same level have the same indentation"),
    ("found unexpected end of stream", "close the open quote or bracket"),
    ("found unacceptable character", "remove control characters; save the file as UTF-8"),
)


def _report_yaml_error(exc: yaml.YAMLError, text: str, reporter: Reporter) -> None:
    line, column = 1, 1
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
    elif isinstance(exc, yaml.reader.ReaderError):
        line, column = _line_col(text, exc.position)
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    else:
        problem = str(exc) or "invalid YAML"
    hint = "fix the YAML syntax at this position"
    for needle, better in _YAML_HINTS:
        if needle in str(exc):
            hint = better
            break
    reporter.error_at(line, column, "", f"YAML syntax error: {problem}", None, hint)


def _line_col(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


class _YamlBuilder:
    """Turns PyYAML nodes into `Node`s. Aliased nodes are built once and shared, so alias
    bombs stay linear; a node that contains itself is reported, not followed."""

    def __init__(
        self, loader: yaml.SafeLoader | yaml.CSafeLoader, text: str, reporter: Reporter
    ) -> None:
        self.loader = loader
        self.text = text
        self.reporter = reporter
        self.done: dict[int, Node] = {}
        self.active: set[int] = set()

    def build(self, node: yaml.Node, path: str = "") -> Node:
        key = id(node)
        if key in self.done:
            return self.done[key]
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if key in self.active:
            # Ruby and PyYAML build such recursive values; nothing in an appspec can use one.
            self.reporter.warning_at(
                line,
                column,
                path,
                "this alias refers to the collection that contains it; it is read as null here",
                None,
                "do not nest an anchored collection inside itself",
            )
            return Node("scalar", line, column, None, "")
        self.active.add(key)
        try:
            if isinstance(node, yaml.ScalarNode):
                built = self._scalar(node, line, column, path)
            elif isinstance(node, yaml.SequenceNode):
                built = Node(
                    "sequence",
                    line,
                    column,
                    items=tuple(self.build(n, key_path(path, i)) for i, n in enumerate(node.value)),
                )
            elif isinstance(node, yaml.MappingNode):
                built = Node("mapping", line, column, pairs=self._pairs(node, path))
            else:  # pragma: no cover - PyYAML composes only these three kinds of node
                raise TypeError(f"{path}: unexpected YAML node {type(node).__name__}")
        finally:
            self.active.discard(key)
        self.done[key] = built
        return built

    def _scalar(self, node: yaml.ScalarNode, line: int, column: int, path: str) -> Node:
        quoted = bool(node.style)  # plain: None from PyYAML's parser, "" from libyaml
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            resolved = (
                self.loader.resolve(yaml.ScalarNode, node.value, (True, False))
                if not quoted
                else "tag:yaml.org,2002:str"
            )
            if tag != _MERGE_TAG:
                self.reporter.warning_at(
                    line,
                    column,
                    path,
                    f"the YAML tag {tag} is not understood here; the value is read as if untagged",
                    node.value,
                    "remove the tag",
                )
            tag = resolved if resolved in _SCALAR_TAGS else "tag:yaml.org,2002:str"
        if tag == _INT_TAG and sum(c.isdigit() for c in node.value) > MAX_DIGITS:
            # Python cannot make an int of it; kept as written, the key's own check says what
            # range it wants (a warning about Python's limit would tell the user nothing).
            return Node("scalar", line, column, node.value, node.value, quoted)
        try:
            tagged = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
            value = self.loader.construct_object(tagged, deep=True)
        except Exception as exc:  # PyYAML's constructors raise assorted errors on odd text
            # e.g. `2001-13-45` matches YAML's timestamp pattern but is no date, and
            # `!!timestamp foo` fails inside PyYAML; Ruby's YAML reads such text as a string.
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            self.reporter.warning_at(
                line,
                column,
                path,
                f"YAML cannot read this value as a {tag.rsplit(':', 1)[-1]} "
                f"({(reason or '').splitlines()[0] if reason else 'invalid'}); "
                "it is read as a string",
                node.value,
                "quote the value to make it a string, or correct it",
            )
            value = node.value
        return Node("scalar", line, column, value, node.value, quoted)

    def _pairs(self, node: yaml.MappingNode, path: str) -> tuple[tuple[Node, Node], ...]:
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path))
            else:
                inner = key_path(path, _key_text(key_node))
                own.append((self.build(key_node, path), self.build(value_node, inner)))
        return _dedupe(merged, own, self.reporter, path)

    def _merge_sources(self, value_node: yaml.Node, path: str) -> list[tuple[Node, Node]]:
        # `<<: *a` or `<<: [*a, *b]`: earlier sources win, the mapping's own keys win over all.
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        pairs: list[tuple[Node, Node]] = []
        for source in reversed(sources):
            built = self.build(source, path)
            if not built.is_mapping:
                self.reporter.error_at(
                    built.line,
                    built.column,
                    path,
                    "a merge key (<<) needs a mapping or a list of mappings",
                    built.render(),
                    "write `<<: *anchor` where the anchor names a mapping",
                )
                continue
            pairs.extend(built.pairs)
        return pairs


def _key_text(key: yaml.Node) -> str:
    return str(key.value) if isinstance(key, yaml.ScalarNode) else "?"


def _identity(key: Node) -> object:
    # Ruby-like key identity: 1, 1.0 and true are different keys; collections never collide.
    if key.is_scalar:
        try:
            hash(key.value)
        except TypeError:
            return ("id", id(key))
        return (type(key.value).__name__, key.value)
    return ("id", id(key))


def _dedupe(
    merged: list[tuple[Node, Node]], own: list[tuple[Node, Node]], reporter: Reporter, path: str
) -> tuple[tuple[Node, Node], ...]:
    result: dict[object, tuple[Node, Node]] = {}
    for k, v in merged:
        result[_identity(k)] = (k, v)
    seen_own: dict[object, Node] = {}
    for k, v in own:
        ident = _identity(k)
        first = seen_own.get(ident)
        if first is not None:
            name = k.text if k.is_scalar else k.render()
            if first.line == k.line:
                first_at, again_at = f"{first.line}:{first.column}", f"{k.line}:{k.column}"
            else:
                first_at, again_at = f"line {first.line}", f"line {k.line}"
            reporter.warning_at(
                k.line,
                k.column,
                key_path(path, name),
                f"duplicate key {name!r}: first at {first_at}, again at {again_at}; the value "
                f"at {again_at} is used and the earlier one ignored",
                name,
                "keep only one of them",
            )
        seen_own[ident] = k
        result[ident] = (k, v)
    return tuple(result.values())


# --- JSON fallback ----------------------------------------------------------------------------

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_WS = " \t\n\r"


def _load_json(text: str, reporter: Reporter) -> LoadedDocument:
    try:
        json.loads(text, parse_int=str)  # syntax only: no int conversion (Python limits digits)
    except json.JSONDecodeError as exc:
        reporter.error_at(
            exc.lineno,
            exc.colno,
            "",
            f"JSON syntax error: {exc.msg}",
            None,
            "fix the JSON at this position (keys and strings in double quotes, no trailing commas)",
        )
        return LoadedDocument(None, failed=True, kind="json")
    except RecursionError:
        reporter.error_at(
            1, 1, "", "the document is nested too deeply to read", None, _TOO_DEEP_HINT
        )
        return LoadedDocument(None, failed=True, kind="json")
    try:
        parser = _JsonParser(text, reporter)
        return LoadedDocument(parser.parse(), kind="json")
    except RecursionError:
        reporter.error_at(
            1, 1, "", "the document is nested too deeply to read", None, _TOO_DEEP_HINT
        )
        return LoadedDocument(None, failed=True, kind="json")


class _JsonParser:
    """A small recursive-descent reader for text json.loads already accepted; it only adds
    positions."""

    def __init__(self, text: str, reporter: Reporter) -> None:
        self.text = text
        self.reporter = reporter
        self.pos = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def where(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def parse(self) -> Node:
        self.skip()
        return self.value("")

    def value(self, path: str) -> Node:
        self.skip()
        line, column = self.where(self.pos)
        ch = self.text[self.pos]
        if ch == "{":
            return Node("mapping", line, column, pairs=self.object(path))
        if ch == "[":
            return Node("sequence", line, column, items=tuple(self.array(path)))
        if ch == '"':
            # json.decoder's public scanstring is missing from typeshed
            value, end = json.decoder.scanstring(self.text, self.pos + 1)  # type: ignore[attr-defined]
            self.pos = end
            return Node("scalar", line, column, value, value, True)
        for word, literal in (
            ("true", True),
            ("false", False),
            ("null", None),
            ("NaN", float("nan")),
            ("Infinity", float("inf")),
            ("-Infinity", float("-inf")),
        ):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return Node("scalar", line, column, literal, word)
        match = _NUMBER.match(self.text, self.pos)
        assert match is not None  # json.loads accepted the text
        self.pos = match.end()
        raw = match.group(0)
        if not (match.group(1) or match.group(2)) and len(raw.lstrip("-")) > MAX_DIGITS:
            return Node("scalar", line, column, raw, raw)  # as in YAML: beyond Python's int
        number: int | float = float(raw) if match.group(1) or match.group(2) else int(raw)
        return Node("scalar", line, column, number, raw)

    def object(self, path: str) -> tuple[tuple[Node, Node], ...]:
        self.pos += 1
        own: list[tuple[Node, Node]] = []
        self.skip()
        if self.text[self.pos] == "}":
            self.pos += 1
            return ()
        while True:
            key = self.value(path)
            self.skip()
            self.pos += 1  # ':'
            own.append((key, self.value(key_path(path, str(key.value)))))
            self.skip()
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "}":
                return _dedupe([], own, self.reporter, path)

    def array(self, path: str) -> Iterator[Node]:
        index = 0
        self.pos += 1
        self.skip()
        if self.text[self.pos] == "]":
            self.pos += 1
            return
        while True:
            yield self.value(key_path(path, index))
            index += 1
            self.skip()
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "]":
                return
