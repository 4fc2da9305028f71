"""The Rasa client against a stand-in Rasa server: what it sends, what it makes of the answers,
and how it reports trouble."""

from __future__ import annotations

import pytest

from bot.gateway.rasa_client import MESSAGE_ID_KEY, Button, RasaClient, RasaRefused, RasaUnavailable, Reply
from standins.servers import free_port
from tests.gateway.standin_rasa import CHANNEL_SECRET, TOKEN, StandInRasa


async def client_for(url: str, timeout: float = 2.0) -> RasaClient:
    client = RasaClient(url, TOKEN, timeout, channel_secret=CHANNEL_SECRET)
    await client.open()
    return client


async def test_a_message_goes_to_the_rest_channel_with_its_metadata(rasa: StandInRasa) -> None:
    client = await client_for(rasa.url)
    replies = await client.send_message(
        "telegram:5", "menu", message_id=17, channel="telegram", metadata={"first_name": "Ann"}
    )
    await client.close()

    assert rasa.webhook_calls == [
        {
            "sender": "telegram:5",
            "message": "menu",
            "input_channel": "telegram",
            "metadata": {"first_name": "Ann", MESSAGE_ID_KEY: 17},
        }
    ]
    assert replies == [
        Reply(
            text="What can I do for you?",
            buttons=(
                Button("Track my order", "/check_order_status"),
                Button("Talk to a person", "/request_human"),
            ),
        )
    ]


def test_replies_keep_only_what_channels_can_show_safely() -> None:
    reply = Reply.parse(
        {
            "text": "Look",
            "image": "javascript:alert(1)",
            "buttons": [{"title": "ok", "payload": "/affirm"}, {"payload": "/no_title"}, "junk"],
            "custom": {"kind": "card"},
        }
    )
    assert reply == Reply(text="Look", buttons=(Button("ok", "/affirm"),), custom={"kind": "card"})
    assert reply.payload() == {"buttons": [{"title": "ok", "payload": "/affirm"}], "custom": {"kind": "card"}}
    assert Reply.parse({"image": "https://shop.example/a.png"}).payload() == {
        "image": "https://shop.example/a.png"
    }
    assert Reply.parse({"text": ""}).payload() is None


async def test_trouble_is_reported_as_unavailable_or_refused(rasa: StandInRasa) -> None:
    nowhere = await client_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RasaUnavailable, match="unreachable"):
        await nowhere.send_message("web:a", "hi", message_id=1, channel="web", metadata={})
    await nowhere.close()

    client = await client_for(rasa.url, timeout=0.5)
    rasa.delay = 1.5
    with pytest.raises(RasaUnavailable, match="did not answer within 0.5 s"):
        await client.send_message("web:a", "hi", message_id=1, channel="web", metadata={})
    rasa.delay, rasa.status = 0.0, 503
    with pytest.raises(RasaUnavailable, match="503"):
        await client.send_message("web:a", "hi", message_id=2, channel="web", metadata={})
    rasa.status = 200
    with pytest.raises(RasaRefused) as refused:
        await client.trigger_intent("web:a", "EXTERNAL_nope", {})
    await client.close()
    assert refused.value.status == 404 and "does not exist" in refused.value.detail


async def test_trigger_intent_returns_the_messages_and_sends_the_token(rasa: StandInRasa) -> None:
    client = await client_for(rasa.url)
    replies = await client.trigger_intent("web:a b", "EXTERNAL_checkin", {"order_id": "CL-1"})
    bad = RasaClient(rasa.url, "wrong", 2.0, channel_secret=CHANNEL_SECRET)
    await bad.open()
    with pytest.raises(RasaRefused):
        await bad.trigger_intent("web:a", "EXTERNAL_checkin", {})
    await bad.close()
    await client.close()

    assert [r.text for r in replies] == ["Hi again! Is everything fine with your order?"]
    assert rasa.trigger_calls[0] == {
        "sender": "web:a b",
        "name": "EXTERNAL_checkin",
        "entities": {"order_id": "CL-1"},
    }


async def test_answers_already_given_are_found_in_the_tracker(rasa: StandInRasa) -> None:
    client = await client_for(rasa.url)
    await client.send_message("web:t", "first", message_id=1, channel="web", metadata={})
    await client.send_message("web:t", "menu", message_id=2, channel="web", metadata={})

    found = await client.replies_already_given("web:t", 2)
    first = await client.replies_already_given("web:t", 1)
    missing = await client.replies_already_given("web:t", 3)
    await client.close()

    assert [r.text for r in found] == ["What can I do for you?"] and len(found[0].buttons) == 2
    assert [r.text for r in first] == ["You said: first"]
    assert missing is None


async def test_a_customer_message_is_waited_for_up_to_the_patience_other_calls_only_the_timeout(
    rasa: StandInRasa,
) -> None:
    client = RasaClient(rasa.url, TOKEN, 0.5, channel_secret=CHANNEL_SECRET, patience=5.0)
    await client.open()
    rasa.delay = 1.5  # slower than the timeout, well within the patience
    replies = await client.send_message("web:p", "slow", message_id=1, channel="web", metadata={})
    patient = RasaClient(rasa.url, TOKEN, 0.5, channel_secret=CHANNEL_SECRET, patience=1.0)
    await patient.open()
    with pytest.raises(RasaUnavailable, match="did not answer within 1 s"):
        await patient.send_message("web:p", "slower", message_id=2, channel="web", metadata={})
    await patient.close()
    await client.close()

    assert [r.text for r in replies] == ["You said: slow"]
