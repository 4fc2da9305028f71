"""Erasing a customer empties their Rasa tracker too, through the real Rasa server."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from bot.crm.models import Conversation
from bot.crm.privacy import erase_customer, wipe_trackers
from tests.e2e.conftest import Stack, texts


def tracker_texts(stack: Stack, sender_id: str) -> list[str]:
    response = httpx.get(
        f"{stack.settings.rasa_url}/conversations/{sender_id}/tracker",
        params={"token": stack.settings.rasa_token},
        timeout=30,
    )
    response.raise_for_status()
    return [str(e.get("text")) for e in response.json()["events"] if e.get("event") in ("user", "bot")]


def test_erasure_wipes_the_rasa_tracker_and_the_crm(stack: Stack) -> None:
    sender = "web:e2e-forget-me"
    assert texts(stack.say(sender, "hi, I'm Tomas and my email is tomas@example.org"))
    assert any("tomas@example.org" in text for text in tracker_texts(stack, sender))
    with stack.crm() as crm:
        customer_id = crm.scalars(
            select(Conversation.customer_id).where(Conversation.sender_id == sender)
        ).one()
        assert erase_customer(session=crm, customer_id=customer_id, actor="cli") == [sender]
        crm.commit()
    assert wipe_trackers(tracker_db=stack.settings.rasa_tracker_db, sender_ids=[sender]) > 0
    assert tracker_texts(stack, sender) == []  # Rasa itself no longer knows the conversation
    assert texts(stack.say(sender, "hello"))  # and the same chat can start afresh
