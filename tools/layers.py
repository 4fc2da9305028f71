"""Layers point one way (docs/architecture.md, "The layers"): list the imports that break a rule.

    .venvs/app/bin/python tools/layers.py      (make lint runs it; tests/ops/test_layers.py too)

Imports are read from the source (lazy imports inside functions count too), nothing is imported.
"""

from __future__ import annotations

import ast
import sys
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
    ("bot", "standins", "the product never depends on the stand-ins that fake its network"),
    ("scheduler", "standins", "the product never depends on the stand-ins that fake its network"),
    ("bench", "tests", "the benchmark measures the product, not the test suite"),
    ("standins", "tests", "the stand-ins serve the tests and the benchmark alike"),
    ("standins", "bench", "the stand-ins serve the tests and the benchmark alike"),
    ("bot", "rasa", "the app talks to Rasa over HTTP (it runs in another environment)"),
    ("scheduler", "rasa", "the app talks to Rasa over HTTP (it runs in another environment)"),
]
# Modules Rasa's own interpreter runs (.venvs/rasa): they may import rasa.
RASA_SIDE = ("bot.nlu", "bot.rasa_channel", "bot.ops.rasa_run", "bot.ops.nlu_votes")
# Known breaks, to be removed (each entry must still be true: a fixed one is taken off the list).
KNOWN: set[tuple[str, str]] = set()
PACKAGES = ("bot", "scheduler", "bench", "standins")
ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> set[str]:
    """Every module the file imports, relative imports resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
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
    """Whether `name` is the module `prefix` or inside it."""
    return name == prefix or name.startswith(prefix + ".")


def breaks(root: Path) -> set[tuple[str, str, str]]:
    """Every (importer, imported module, rule's reason) that breaks a rule under `root`."""
    found: set[tuple[str, str, str]] = set()
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


def new_breaks(root: Path) -> list[str]:
    """The breaks not on KNOWN, one sentence each."""
    return sorted(
        f"{importer} imports {name}: {why}"
        for importer, name, why in breaks(root)
        if (importer, name) not in KNOWN
    )


def _top_module(name: str, target: str, root: Path) -> str:
    """The imported module itself (`from tests.x import Name` names the module tests.x)."""
    parts = name.split(".")
    while len(parts) > 1 and not _is_module(root, parts):
        parts.pop()
    return ".".join(parts) if within(".".join(parts), target) else target


def _is_module(root: Path, parts: list[str]) -> bool:
    path = root.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def main() -> int:
    """Print each break and fail, or say the layers hold."""
    found = new_breaks(ROOT)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"layers: {len(RULES)} import rules hold in {', '.join(PACKAGES)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
