"""Fixtures for gateway tests: a stand-in Rasa on a free port and a real gateway in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway, close_sockets, copy_crm, gateway_settings, running_gateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["crm_template", "gateway", "rasa"]


@pytest.fixture
async def gateway(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> AsyncIterator[RunningGateway]:
    """A real gateway (uvicorn, own SQLite CRM) in front of the stand-in Rasa."""
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url)
    with running_gateway(settings) as running:
        yield running
        await close_sockets(running)
