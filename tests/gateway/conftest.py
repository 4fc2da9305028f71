"""Fixtures for gateway tests: a stand-in Rasa on a free port and a real gateway in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.crm.migrate import upgrade
from tests.gateway.harness import RunningGateway, close_sockets, copy_crm, gateway_settings, running_gateway
from tests.gateway.servers import ServerThread
from tests.gateway.standin_rasa import StandInRasa


@pytest.fixture(scope="session")
def crm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty CRM, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("crm-template") / "crm.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def rasa() -> Iterator[StandInRasa]:
    standin = StandInRasa()
    with ServerThread(standin.app()) as server:
        standin.url = server.url
        yield standin


@pytest.fixture
async def gateway(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> AsyncIterator[RunningGateway]:
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url)
    with running_gateway(settings) as running:
        yield running
        await close_sockets(running)
