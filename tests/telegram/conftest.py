"""Fixtures for Telegram tests: the real python-telegram-bot client inside a real gateway, talking
to a stand-in Bot API server, with a stand-in Rasa behind the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from standins.servers import ServerThread
from standins.telegram_botapi import TOKEN, StandInBotApi
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import (
    RunningGateway,
    close_sockets,
    copy_crm,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["crm_template", "gateway", "gateway_env", "rasa", "telegram"]


@pytest.fixture
def telegram() -> Iterator[StandInBotApi]:
    standin = StandInBotApi()
    with ServerThread(standin.app()) as server:
        standin.url = server.url
        yield standin


@pytest.fixture
def gateway_env() -> dict[str, str]:
    """Extra settings for the gateway under test (a test may override this fixture)."""
    return {}


@pytest.fixture
async def gateway(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    crm_template: Path,
    rasa: StandInRasa,
    telegram: StandInBotApi,
    gateway_env: dict[str, str],
) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as `python -m bot.gateway` sets it
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(
        tmp_path / "var",
        rasa.url,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=telegram.url,
        **gateway_env,
    )
    with running_gateway(settings) as running:
        wait_until(
            lambda: httpx.get(f"{running.url}/health", timeout=5).json()["telegram"] == "running",
            what="Telegram to connect",
        )
        yield running
        await close_sockets(running)
