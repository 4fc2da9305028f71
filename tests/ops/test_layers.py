"""Layers point one way (docs/architecture.md, "The layers"): a rule broken here fails the suite.

Imports are read from the source (lazy imports inside functions count too), nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

# (importer prefix, imported prefix, why it must not)
RULES = [
    ("bot.crm", "bot.gateway", "the CRM is the bottom layer: every service builds on it"),
    ("bot.crm", "bot.console", "the CRM is the bottom layer: every service builds on it"),
    ("bot.crm", "bot.actions", "the CRM is the bottom layer: every service builds on it"),
    ("bot.gateway", "bot.actions", "the gateway and the action server are separate processes"),
    ("bot", "tests", "the product never depends on its tests"),
    ("scheduler", "tests", "the product never depends on its tests"),
    ("bot", "bench", "the product never depends on its benchmark"),
    ("scheduler", "bench", "the product never depends on its benchmark"),
    ("bench", "tests", "the benchmark measures the product, not the test suite"),
    ("bot", "rasa", "the app talks to Rasa over HTTP (it runs in another environment)"),
    ("scheduler", "rasa", "the app talks to Rasa over HTTP (it runs in another environment)"),
]
# Modules Rasa's own interpreter runs (.venvs/rasa): they may import rasa.
RASA_SIDE = ("bot.nlu", "bot.rasa_channel", "bot.ops.rasa_run", "bot.ops.nlu_votes")
# Known breaks, to be removed (each entry must still be true: a fixed one is taken off the list).
KNOWN = {
    # The stand-in Telegram Bot API and the server thread live in tests/; moving them touches
    # fifteen test modules, left for a quieter day.
    ("bench.stack", "tests.gateway.servers"),
    ("bench.stack", "tests.telegram.standin_botapi"),
}
PACKAGES = ("bot", "scheduler", "bench")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> set[str]:
    """Every module the file imports, relative imports resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def breaks(root: Path) -> set[tuple[str, str, str]]:
    found = set()
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            importer = module_name(path, root)
            for name in imported(path, root):
                for source, target, why in RULES:
                    if not (within(importer, source) and within(name, target)):
                        continue
                    if target == "rasa" and any(within(importer, r) for r in RASA_SIDE):
                        continue
                    found.add((importer, _top_module(name, target, root), why))
    return found


def _top_module(name: str, target: str, root: Path) -> str:
    """The imported module itself (`from tests.x import Name` names the module tests.x)."""
    parts = name.split(".")
    while len(parts) > 1 and not _is_module(root, parts):
        parts.pop()
    return ".".join(parts) if within(".".join(parts), target) else target


def _is_module(root: Path, parts: list[str]) -> bool:
    path = root.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_imports_are_read_with_relative_ones_resolved(tmp_path: Path) -> None:
    module = tmp_path / "bot" / "crm" / "models" / "care.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from .base import Base\nimport bot.gateway.inbox\n\ndef f():\n    from tests import x\n"
    )
    assert imported(module, tmp_path) >= {"bot.crm.models.base", "bot.gateway.inbox", "tests"}


def test_a_lower_layer_importing_a_higher_one_is_found(tmp_path: Path) -> None:
    (tmp_path / "bot" / "crm").mkdir(parents=True)
    (tmp_path / "bot" / "crm" / "queries.py").write_text(
        "def f():\n    from bot.gateway.inbox import Inbox\n"
    )
    (tmp_path / "bot" / "gateway").mkdir()
    (tmp_path / "bot" / "gateway" / "inbox.py").write_text("")
    assert {(i, m) for i, m, _ in breaks(tmp_path)} == {("bot.crm.queries", "bot.gateway.inbox")}


def test_layers_point_one_way(project_root: Path) -> None:
    new = sorted(
        f"{importer} imports {name}: {why}"
        for importer, name, why in breaks(project_root)
        if (importer, name) not in KNOWN
    )
    assert not new, new


def test_the_known_breaks_are_still_there(project_root: Path) -> None:
    """A break that was fixed comes off KNOWN, so that it cannot come back unnoticed."""
    found = {(importer, name) for importer, name, _ in breaks(project_root)}
    assert sorted(KNOWN - found) == []
