"""Layers point one way (docs/architecture.md, "The layers"): a rule broken here fails the suite.

The rules and the check live in tools/layers.py, which `make lint` runs on its own.
"""

from __future__ import annotations

from pathlib import Path

from tools.layers import KNOWN, breaks, imported, new_breaks


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


def test_the_product_may_not_import_the_stand_ins(tmp_path: Path) -> None:
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "sender.py").write_text("from standins.servers import free_port\n")
    (tmp_path / "standins").mkdir()
    (tmp_path / "standins" / "servers.py").write_text("")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "stack.py").write_text("from standins.servers import free_port\n")
    assert {(i, m) for i, m, _ in breaks(tmp_path)} == {("scheduler.sender", "standins.servers")}


def test_layers_point_one_way(project_root: Path) -> None:
    found = new_breaks(project_root)
    assert not found, found


def test_the_known_breaks_are_still_there(project_root: Path) -> None:
    """A break that was fixed comes off KNOWN, so that it cannot come back unnoticed."""
    found = {(importer, name) for importer, name, _ in breaks(project_root)}
    assert sorted(KNOWN - found) == []
