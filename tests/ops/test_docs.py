"""The documents the code and the README point at are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from bot.ops.model import TRAINING_INPUTS

DOC_PATH = re.compile(r"\bdocs/[\w./-]+?\.md\b")
RELATIVE_LINK = re.compile(r"\]\(([\w./-]+?\.md)(?:#[\w-]*)?\)")
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


def test_links_between_docs_resolve(project_root: Path) -> None:
    docs = sorted((project_root / "docs").glob("*.md"))
    assert docs
    broken = {
        f"{doc.name}: {link}"
        for doc in docs
        for link in RELATIVE_LINK.findall(doc.read_text(encoding="utf-8"))
        if not (doc.parent / link).is_file()
    }
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
