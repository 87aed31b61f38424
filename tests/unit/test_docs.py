"""The user documentation: a short README, and every relative link in it and in docs/ resolves
(the file exists; a `#fragment` into a Markdown file names one of its headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 260
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")  # inline links and images; the text may span lines
EXTERNAL = ("http://", "https://", "mailto:")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (lower case, punctuation dropped,
    spaces to hyphens, `-1`, `-2` ... for repeats)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", markdown).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(document: Path) -> list[str]:
    """Targets of the document's links outside code blocks, external ones left out."""
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text) if not target.startswith(EXTERNAL)]


def test_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in relative_links(document):
        path, _, fragment = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target} (no file {file.relative_to(REPO)})")
        elif (
            fragment
            and file.suffix == ".md"
            and fragment not in github_anchors(file.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target} (no heading #{fragment})")
    assert not broken, f"{document.relative_to(REPO)}: broken links: {', '.join(broken)}"


def test_docs_exist() -> None:
    for name in ("benchmarks.md", "reference.md", "history.md"):
        assert (REPO / "docs" / name).is_file(), f"docs/{name} is missing"


def test_anchor_rules() -> None:
    text = "# A `code` heading, (with) punctuation\n## Repeat\n## Repeat\n```\n# no heading\n```\n"
    assert github_anchors(text) == {"a-code-heading-with-punctuation", "repeat", "repeat-1"}
