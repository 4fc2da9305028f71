"""The documents the code and the README point at are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from bot.ops.model import TRAINING_INPUTS

DOC_PATH = re.compile(r"\bdocs/[\w./-]+?\.md\b")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
FENCED_CODE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)
# A design document kept outside the repository (the team's notes): the code must not cite one.
OUTSIDE_DOCUMENT = re.compile(r"\b(?:DESIGN|STYLE|DEVELOPERS)\.md\b|\bDESIGN\b")
SOURCES = ("bot", "scheduler", "tests", "bench", "tools", "docs")
TOP_LEVEL = ("README.md", "Makefile", "endpoints.yml", "credentials.yml", ".env.example", "pyproject.toml")
SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".sh", ".js", ".html", ".css", ".txt", ".cfg"}
SKIPPED_PARTS = {"__pycache__", "node_modules", "screenshots"}


def _texts(root: Path) -> list[Path]:
    """Our code, docs and top-level files; training inputs are left out (changing them retrains)."""
    found = [root / name for name in TOP_LEVEL if (root / name).is_file()]
    for top in SOURCES:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_PARTS & set(path.parts):
                found.append(path)
    training = [root / name for name in TRAINING_INPUTS]
    return [p for p in found if not any(p == t or t in p.parents for t in training)]


def cited_docs(text: str) -> set[str]:
    """The `docs/….md` paths a text names."""
    return set(DOC_PATH.findall(text))


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks and inline code, where a link is only text."""
    return INLINE_CODE.sub("", FENCED_CODE.sub("", text))


def relative_links(text: str) -> list[str]:
    """The targets of a Markdown text's links that point inside the repository, in order."""
    return [link for link in MARKDOWN_LINK.findall(_prose(text)) if not EXTERNAL.match(link)]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown text's headings (lower case, punctuation dropped, a
    number added to a repeated one)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCED_CODE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page whose file, or heading within it, does not exist."""
    broken = []
    for link in relative_links(page.read_text(encoding="utf-8")):
        path, _, anchor = link.partition("#")
        target = (page.parent / path) if path else page
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text(encoding="utf-8")):
            broken.append(link)
    return broken


def test_cited_paths_are_found_in_any_text() -> None:
    text = "see docs/architecture.md, and (docs/nlu-pipeline.md). Not docs/ alone or docs/x.txt"
    assert cited_docs(text) == {"docs/architecture.md", "docs/nlu-pipeline.md"}


def test_every_cited_doc_exists(project_root: Path) -> None:
    missing = {
        f"{path.relative_to(project_root)}: {cited}"
        for path in _texts(project_root)
        for cited in cited_docs(path.read_text(encoding="utf-8", errors="replace"))
        if not (project_root / cited).is_file()
    }
    assert not missing, sorted(missing)


def test_links_are_found_outside_code_and_anchors_are_github_slugs() -> None:
    text = "See [a](pages/a.md#Its-Part), [b](#here) and <https://x.org>.\n```\n[c](c.md)\n```\n`[d](d.md)`"
    assert relative_links(text) == ["pages/a.md#Its-Part", "#here"]
    headings = "# Day one: import the shop's files\n## The SLA clock — `sla.py`\n## Tests\n## Tests\n"
    assert anchors(headings) == {"day-one-import-the-shops-files", "the-sla-clock--slapy", "tests", "tests-1"}


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "a.md").write_text("# A\n## Part one\n", encoding="utf-8")
    text = "[ok](guide/a.md#part-one) [gone](guide/b.md) [no part](guide/a.md#part-two) [self](#nowhere)"
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    assert broken_links(tmp_path / "README.md") == ["guide/b.md", "guide/a.md#part-two", "#nowhere"]


def test_every_relative_link_in_the_readme_and_docs_resolves(project_root: Path) -> None:
    pages = [project_root / "README.md", *sorted((project_root / "docs").glob("*.md"))]
    assert len(pages) > 1
    broken = {f"{page.relative_to(project_root)}: {link}" for page in pages for link in broken_links(page)}
    assert not broken, sorted(broken)


def test_the_architecture_is_in_the_repository(project_root: Path) -> None:
    text = (project_root / "docs" / "architecture.md").read_text(encoding="utf-8")
    for heading in ("## The processes", "## The one door", "## The guarantees"):
        assert heading in text


def test_nothing_cites_a_document_outside_the_repository(project_root: Path) -> None:
    citing = {
        f"{path.relative_to(project_root)}:{number}"
        for path in _texts(project_root)
        if path.name != "test_docs.py"
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE_DOCUMENT.search(line)
    }
    assert not citing, sorted(citing)


def test_every_doc_is_reachable_from_the_readme(project_root: Path) -> None:
    linked = {
        link.partition("#")[0] for link in relative_links((project_root / "README.md").read_text("utf-8"))
    }
    unlinked = {f"docs/{doc.name}" for doc in (project_root / "docs").glob("*.md")} - linked
    assert not unlinked, sorted(unlinked)
