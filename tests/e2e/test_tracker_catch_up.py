"""The gateway's Rasa client against the real Rasa: a message Rasa missed while a person was in
charge is added to a paused conversation as history, with Rasa's own reading of it, and the bot
says nothing."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.gateway.rasa_client import MESSAGE_ID_KEY, RasaClient
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def tracker_events(stack: Stack, sender_id: str) -> list[dict[str, object]]:
    url = f"{stack.settings.rasa_url}/conversations/{sender_id}/tracker"
    response = httpx.get(url, params={"token": stack.settings.rasa_token}, timeout=30)
    response.raise_for_status()
    events: list[dict[str, object]] = response.json()["events"]
    return events


def test_a_missed_message_joins_a_paused_tracker_as_history(stack: Stack) -> None:
    sender = "web:e2e-late"
    stack.say(sender, "hi")

    async def pause_and_add_late() -> None:
        settings = stack.settings
        client = RasaClient(
            settings.rasa_url,
            settings.rasa_token,
            timeout=30,
            channel_secret=settings.rasa_channel_secret,
            patience=60,
        )
        await client.open()
        try:
            await client.pause(sender)
            await client.add_user_message(
                sender, "my parcel never arrived", message_id=4242, sent_at=time.time(), channel="web"
            )
        finally:
            await client.close()

    asyncio.run(pause_and_add_late())
    events = tracker_events(stack, sender)
    late = events[-1]
    assert late["event"] == "user" and late["text"] == "my parcel never arrived"
    parse_data = late["parse_data"]
    assert isinstance(parse_data, dict) and parse_data["intent"]["name"] == "complain"
    metadata = late["metadata"]
    assert isinstance(metadata, dict) and metadata[MESSAGE_ID_KEY] == 4242 and metadata["added_late"]
    assert [e["event"] for e in events[-2:]] == ["pause", "user"]  # nothing predicted, nothing said
