"""Fixtures shared by the gateway, Telegram and web chat tests (imported by their conftest files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.crm.migrate import upgrade
from standins.servers import ServerThread
from tests.gateway.standin_rasa import StandInRasa


@pytest.fixture(scope="session")
def crm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty CRM, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("crm-template") / "crm.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def rasa() -> Iterator[StandInRasa]:
    """A stand-in Rasa server on a free port."""
    standin = StandInRasa()
    with ServerThread(standin.app()) as server:
        standin.url = server.url
        yield standin
