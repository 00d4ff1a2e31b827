"""Every reference in the code can be followed inside the repository: invariants are
ARCHITECTURE.md's, CodeDeploy behaviour is described in docs/, and every anchor exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for folder in ("engine", "tui", "tests", "bench")
    for p in (REPO / folder).rglob("*.py")
    if p != Path(__file__)
]
DOCS = [REPO / "ARCHITECTURE.md", REPO / "README.md", *(REPO / "docs").glob("*.md")]
ANCHOR = re.compile(r"(codedeploy-(?:agent|service)\.md)#([a-z0-9-]+)")


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings, and its explicit `<a id>` ones."""
    text = doc.read_text()
    found = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return found


def test_no_citation_points_outside_the_repository() -> None:
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in SOURCES
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "§" in line or "../shared" in line
    ]
    assert offenders == [], "cite docs/codedeploy-*.md#anchor or ARCHITECTURE.md instead"


def test_every_cited_invariant_is_numbered_in_architecture() -> None:
    numbered = set(re.findall(r"^(\d+)\. \*\*", (REPO / "ARCHITECTURE.md").read_text(), re.M))
    cited = {
        (f"{p.relative_to(REPO)}", number)
        for p in SOURCES
        for number in re.findall(r"invariant (\d+)", p.read_text())
    }
    assert {(where, n) for where, n in cited if n not in numbered} == set()


def test_every_cited_anchor_exists() -> None:
    anchors = {
        name: _anchors(REPO / "docs" / name)
        for name in ("codedeploy-agent.md", "codedeploy-service.md")
    }
    missing = {
        f"{p.relative_to(REPO)}: {doc}#{anchor}"
        for p in [*SOURCES, *DOCS]
        for doc, anchor in ANCHOR.findall(p.read_text())
        if anchor not in anchors[doc]
    }
    assert missing == set()
