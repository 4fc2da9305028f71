"""End to end: the real Rasa server, the real action server, the real CRM."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from bot.crm.models import Customer, InteractionEvent
from bot.crm.queries import find_customer
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_known_demo_customer_is_greeted_by_name_and_the_interaction_is_stored(stack: Stack) -> None:
    replies = stack.say("web:demo-0001", "hi")

    assert len(replies) == 1
    assert "Anna" in str(replies[0]["text"])
    with stack.crm() as crm:
        anna = find_customer(session=crm, sender_id="web:demo-0001")
        assert anna is not None
        events = crm.scalars(select(InteractionEvent).where(InteractionEvent.customer_id == anna.id)).all()
        assert [(e.kind, e.intent) for e in events] == [("behaviour", "greet"), ("greet", "greet")]
        assert events[1].confidence is not None and events[1].confidence > 0.5


def test_stranger_is_welcomed_and_remembered(stack: Stack) -> None:
    with stack.crm() as crm:
        before = crm.scalar(select(func.count(Customer.id)))

    replies = stack.say("web:e2e-stranger", "hello there")

    assert "welcome to CareLoop" in str(replies[0]["text"])
    with stack.crm() as crm:
        assert crm.scalar(select(func.count(Customer.id))) == before + 1
        assert find_customer(session=crm, sender_id="web:e2e-stranger") is not None
    # Remembered: the second hello is a welcome back (no name yet, so without one).
    assert "Hello again" in str(stack.say("web:e2e-stranger", "hi")[0]["text"])


def test_bot_is_honest_and_declines_what_it_cannot_do(stack: Stack) -> None:
    assert "virtual assistant" in str(stack.say("web:e2e-honest", "are you a real person?")[0]["text"])
    assert "not something I can help with" in str(stack.say("web:e2e-honest", "tell me a joke")[0]["text"])


def test_rasa_http_api_needs_the_token(stack: Stack) -> None:
    url = f"{stack.settings.rasa_url}/conversations/web:demo-0001/tracker"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, params={"token": "wrong"}, timeout=10).status_code == 401
    tracker = httpx.get(url, params={"token": stack.settings.rasa_token}, timeout=10)
    assert tracker.status_code == 200
    assert "action_greet" in {e.get("name") for e in tracker.json()["events"]}
