"""Fixtures for the bench's own tests: a real gateway in front of a stand-in Rasa (fast checks of
the load generator and the counting), and the bench's web chat customers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.population import ChatCustomer
from bot.gateway import tokens
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway, copy_crm, gateway_settings, running_gateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["crm_template", "gateway", "new_customer", "rasa"]


@pytest.fixture
def gateway(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    """A real gateway (uvicorn, own SQLite CRM) in front of the stand-in Rasa."""
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url)
    with running_gateway(settings) as running:
        yield running


@pytest.fixture
def new_customer(gateway: RunningGateway) -> object:
    """Make a web visitor the gateway will accept (the gateway creates the customer on contact)."""

    def make(order_number: str = "CL-900001") -> ChatCustomer:
        visitor_id, token = tokens.new_visitor(gateway.settings.secret_key)
        return ChatCustomer(f"web:{visitor_id}", token, "Bench", order_number)

    return make
