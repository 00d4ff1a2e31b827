"""libyaml composes documents for speed, PyYAML's own parser whenever there is anything to
report (engine/appspec/document.py): a document reads the same either way, node for node,
position for position and diagnostic for diagnostic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.appspec import document
from engine.appspec.document import Node, load_document
from engine.appspec.report import Reporter
from tests.fuzz import FAST, dump, keys_like, maybe_damaged, values_with
from tui.demo import HEADER, demo_document

REPO = Path(__file__).resolve().parents[2]

TRICKY = [
    "a: 1\nb: [1, 2, {c: d}]\n",
    "mode: 0644\nother: '0644'\nyes: no\nf: 0.0\nempty:\nnull_: ~\n",
    "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nagain: *b\n",
    "dup: 1\ndup: 2\n",
    "block: |\n  line one\n  line two\nfolded: >-\n  a\n  b\n",
    "quoted: \"tab\\there\"\nsingle: 'it''s'\nunicode: \"\\u00e9t\\u00e9\"\n",
    "tagged: !!str 42\nbinary: !!binary aGVsbG8=\nodd: !custom x\nwhen: 2001-02-03\n",
    "first: 1\n---\nsecond: 2\n",
    "---\n...\n",
    "",
    "# only a comment\n",
    "- a\n- - b\n  - c\n-\n  d: e\n",
    "key: value # comment\n? complex\n: mapped\n",
    "k: [unclosed\n",
    "a:\n\tb: tab indented\n",
    "a: b: c\n",
    "x: *undefined\n",
    "ok: 1\n---\n[broken\n",
    "bad: \x07bell\n",
    "big: 123456789012345678901234567890\n",
    "\ufeffbom: true\n",
    "[" * 60 + "]" * 60,
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 40)),
]


def read(text: str, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """Everything load_document makes of `text`: the node tree and the diagnostics."""
    with monkeypatch.context() as patch:
        patch.setattr(document.yaml, "__with_libyaml__", libyaml)
        reporter = Reporter("appspec.yml")
        loaded = load_document(text, reporter)
    return (loaded.failed, shape(loaded.root), tuple(map(repr, reporter.diagnostics())))


def shape(node: Node | None) -> Any:
    if node is None:
        return None
    value = repr(node.value) if node.kind == "scalar" else None
    return (
        node.kind,
        node.line,
        node.column,
        value,
        node.text,
        node.quoted,
        tuple(shape(item) for item in node.items),
        tuple((shape(k), shape(v)) for k, v in node.pairs),
    )


def corpus() -> list[str]:
    """The repository's YAML files, the demo's workspace and a bench workspace of 200."""
    skip = {".venv", ".git", "node_modules", "__pycache__"}
    files = sorted(
        path
        for pattern in ("*.yml", "*.yaml")
        for path in REPO.rglob(pattern)
        if not skip & set(path.relative_to(REPO).parts)
    )
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in files]
    texts.append(HEADER + yaml.safe_dump(demo_document(20000), sort_keys=False))
    fleet = {
        f"i{n:04d}": {"tags": {"role": "web", "n": n}, "environment": {"PORT": str(8000 + n)}}
        for n in range(200)
    }
    texts.append(yaml.safe_dump({"applications": {}, "instances": fleet}, sort_keys=False))
    return texts


def test_libyaml_is_there() -> None:
    """the install brings PyYAML with libyaml, so the fast path is what users run"""
    assert yaml.__with_libyaml__


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_read_the_same(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read(text, True, monkeypatch) == read(text, False, monkeypatch)


def test_every_yaml_file_of_the_repository_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus()
    assert len(texts) >= 8
    for text in texts:
        assert read(text, True, monkeypatch) == read(text, False, monkeypatch), text[:200]


@FAST
@given(st.data())
def test_random_documents_read_the_same(data: st.DataObject) -> None:
    doc = data.draw(values_with(keys_like(["files", "hooks", "source", "mode", "<<"])))
    text = maybe_damaged(dump(doc), data)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert read(text, True, monkeypatch) == read(text, False, monkeypatch), text
