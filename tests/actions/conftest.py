"""Action test helpers: a tracker factory and a fresh CRM the action server's settings point at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from bot.actions.base import current_settings
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade


def make_tracker(
    sender_id: str = "web:visitor-1",
    *,
    text: str = "hi",
    intent: str = "greet",
    confidence: float = 0.98,
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Tracker:
    """A tracker as Rasa sends it to the action server after one customer message."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "metadata": metadata or {},
    }
    return Tracker(
        sender_id,
        slots or {},
        latest,
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point the action server's settings at `url`."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("RASA_TOKEN", "test-token")
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    current_settings.cache_clear()


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """A fresh, migrated CRM that actions write to; the yielded session reads what they wrote."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    use_database(monkeypatch, url)
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()
    current_settings.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_both(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    """Like `crm`, once on SQLite and once on PostgreSQL (emptied before and after: `pg_scratch`)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_scratch")
    use_database(monkeypatch, url)
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()
    current_settings.cache_clear()


def context(customer: Any, *, open_case: str | None = None, temperament: str | None = None) -> list[Any]:
    """The slots every CRM action sets first, for a customer as stored."""
    from rasa_sdk.events import SlotSet

    return [
        SlotSet("customer_id", float(customer.id)),
        SlotSet("customer_name", customer.first_name),
        SlotSet("segment", customer.segment.value),
        SlotSet("temperament", temperament or customer.temperament.value),
        SlotSet("open_case", open_case),
        SlotSet("system_trouble", False),
    ]


async def run_action(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    return events, dispatcher
