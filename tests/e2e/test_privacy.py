"""Erasing a customer empties their Rasa tracker too, through the real Rasa server."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from bot.crm.models import Conversation
from bot.crm.privacy import conversations_of, erase_customer, wipe_trackers
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
        senders = conversations_of(session=crm, customer_id=customer_id)
    assert (
        wipe_trackers(rasa_url=stack.settings.rasa_url, token=stack.settings.rasa_token, sender_ids=senders)
        == []
    )
    with stack.crm() as crm:
        erase_customer(session=crm, customer_id=customer_id, actor="cli")
        crm.commit()
    assert tracker_texts(stack, sender) == []
    unreachable = wipe_trackers(rasa_url="http://127.0.0.1:9", token="x", sender_ids=[sender])
    assert unreachable == [sender]  # a Rasa that cannot be reached is reported, not ignored
