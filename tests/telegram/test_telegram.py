"""Telegram through the real python-telegram-bot client in the real gateway, against a stand-in
Bot API server: messages in through getUpdates, replies out through sendMessage."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.crm.models import (
    Author,
    Channel,
    ChannelIdentity,
    Customer,
    DeliveryStatus,
    Direction,
)
from bot.gateway import wording
from bot.gateway.tokens import link_payload
from standins.telegram_botapi import StandInBotApi, blocked, flood
from tests.gateway.harness import RunningGateway, wait_until
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)

CHAT = 700_123_456


def test_a_message_in_through_get_updates_is_answered_through_send_message(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.user_writes(
        CHAT, "where is my parcel?", first_name="Ada", last_name="Lovelace", language_code="de"
    )

    sent = wait_until(lambda: telegram.sent_to(CHAT), what="the reply")

    assert [m["text"] for m in sent] == ["You said: where is my parcel?"]
    assert "parse_mode" not in sent[0]  # plain text: nothing the customer typed is parsed as markup
    assert rasa.webhook_calls[0]["sender"] == f"telegram:{CHAT}"
    assert rasa.webhook_calls[0]["metadata"]["first_name"] == "Ada"
    assert rasa.webhook_calls[0]["input_channel"] == "telegram"
    messages = wait_until(
        lambda: [m for m in gateway.messages(f"telegram:{CHAT}") if m.delivery_status == DeliveryStatus.SENT],
        what="the delivery to be recorded",
    )
    assert messages[0].external_id == str(sent[0]["message_id"])
    inbound = gateway.messages(f"telegram:{CHAT}")[0]
    assert (inbound.direction, inbound.text, inbound.delivery_status) == (
        Direction.INBOUND,
        "where is my parcel?",
        DeliveryStatus.PROCESSED,
    )
    with gateway.crm() as crm:
        identity = crm.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == str(CHAT)))
        assert identity is not None and identity.channel == Channel.TELEGRAM
        customer = crm.get_one(Customer, identity.customer_id)
        assert (customer.first_name, customer.last_name, customer.language) == ("Ada", "Lovelace", "de")
        assert customer.last_contact_at is not None


def test_buttons_become_an_inline_keyboard_and_a_click_is_the_customers_answer(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.user_writes(CHAT, "menu")
    menu = wait_until(lambda: telegram.sent_to(CHAT), what="the menu")[0]
    keyboard = menu["reply_markup"]["inline_keyboard"]
    assert [row[0]["text"] for row in keyboard] == ["Track my order", "Talk to a person"]
    assert all(len(row[0]["callback_data"].encode()) <= 64 for row in keyboard)

    click = telegram.user_clicks(CHAT, menu, 0)
    answer = wait_until(lambda: telegram.sent_to(CHAT)[1:], what="the answer to the click")

    assert [c["callback_query_id"] for c in telegram.calls_of("answerCallbackQuery")] == [
        click["callback_query"]["id"]
    ]
    assert rasa.messages == ["menu", "/check_order_status"]
    assert answer[0]["text"] == "You said: /check_order_status"
    customer_lines = [m.text for m in gateway.messages(f"telegram:{CHAT}") if m.author == Author.CUSTOMER]
    assert customer_lines == ["menu", "Track my order"]


def test_long_replies_are_split_at_telegrams_limit_and_html_is_sent_as_text(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.user_writes(CHAT, "long")
    parts = wait_until(lambda: len(telegram.sent_to(CHAT)) >= 3 and telegram.sent_to(CHAT), what="all parts")
    assert all(len(p["text"]) <= 4096 for p in parts)
    assert "\n".join(p["text"] for p in parts).splitlines() == [f"Line {n}: " + "x" * 90 for n in range(100)]
    hostile = "<b>bold?</b> <a href='javascript:x'>link</a> & *stars* _under_"
    telegram.user_writes(CHAT, hostile)
    echoed = wait_until(lambda: telegram.sent_to(CHAT)[len(parts) :], what="the echo")
    assert echoed[0]["text"] == f"You said: {hostile}" and "parse_mode" not in echoed[0]


def test_flood_control_is_honoured_by_waiting_then_retrying(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.failures.append(flood(1))
    telegram.user_writes(CHAT, "hello")

    answer = "You said: hello"
    wait_until(lambda: [m for m in telegram.sent_to(CHAT) if m["text"] == answer], what="the retried reply")

    # The refused message (the answer, or a holding answer if the machine is slow) is sent again
    # only after Telegram's retry_after, and the answer reaches the customer exactly once.
    with telegram.lock:
        attempts = [(params["text"], when) for name, params, when in telegram.calls if name == "sendMessage"]
    refused = attempts[0][0]
    times = [when for text, when in attempts if text == refused]
    assert len(times) == 2 and times[1] - times[0] >= 0.95
    assert [m["text"] for m in telegram.sent_to(CHAT)].count(answer) == 1
    reply = wait_until(
        lambda: [
            m
            for m in gateway.messages(f"telegram:{CHAT}")
            if m.delivery_status == DeliveryStatus.SENT and m.text == answer
        ],
        what="the delivery to be recorded",
    )
    assert [m.attempts for m in reply] == [1]


def test_a_user_who_blocked_the_bot_is_marked_unreachable_and_not_retried(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.failures.append(blocked())
    telegram.user_writes(CHAT, "bye forever")

    failed = wait_until(
        lambda: [
            m for m in gateway.messages(f"telegram:{CHAT}") if m.delivery_status == DeliveryStatus.FAILED
        ],
        what="the failed delivery",
    )
    assert failed[0].error == "Forbidden: bot was blocked by the user"
    with gateway.crm() as crm:
        identity = crm.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == str(CHAT)))
        assert identity is not None and identity.reachable is False
        assert identity.unreachable_reason == "Forbidden: bot was blocked by the user"
        customer = crm.get_one(Customer, identity.customer_id)
        assert customer.reachable is False
        customer_id = customer.id
    import time

    time.sleep(1.5)  # three retry sweeps
    assert len(telegram.calls_of("sendMessage")) == 1
    import httpx

    proactive = httpx.post(
        f"{gateway.url}/internal/proactive",
        json={"customer_id": customer_id, "intent": "EXTERNAL_checkin"},
        headers={"Authorization": f"Bearer {gateway.settings.internal_api_token}"},
        timeout=10,
    )
    assert (proactive.status_code, proactive.json()["error"]) == (409, "unreachable")


def test_a_telegram_outage_is_retried_later(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.failures.append((502, {"description": "Bad Gateway"}))
    telegram.user_writes(CHAT, "are you there")
    sent = wait_until(lambda: telegram.sent_to(CHAT), what="the later delivery")
    assert [m["text"] for m in sent] == ["You said: are you there"]
    assert len(telegram.calls_of("sendMessage")) == 2


def test_start_greets_and_a_deep_link_attaches_the_chat_to_a_known_customer(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    with gateway.crm() as crm:
        anna = Customer(first_name="Anna", last_name="Berger")
        crm.add(anna)
        crm.commit()
        anna_id = anna.id
    payload = link_payload(gateway.settings.secret_key, anna_id)

    telegram.user_writes(CHAT, f"/start {payload}", first_name="A.")
    sent = wait_until(
        lambda: len(telegram.sent_to(CHAT)) >= 2 and telegram.sent_to(CHAT), what="the greeting"
    )

    assert sent[0]["text"] == wording.LINKED
    assert rasa.messages == ["/greet"]  # /start means hello
    assert rasa.webhook_calls[0]["metadata"]["first_name"] == "Anna"  # the CRM's name, not Telegram's
    with gateway.crm() as crm:
        identity = crm.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == str(CHAT)))
        assert identity is not None and identity.customer_id == anna_id


def test_a_forged_deep_link_links_nothing_but_still_greets(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.user_writes(CHAT, "/start link-1-zzzzzz-forgedsignature")
    sent = wait_until(
        lambda: len(telegram.sent_to(CHAT)) >= 2 and telegram.sent_to(CHAT), what="the greeting"
    )
    assert sent[0]["text"] == wording.LINK_INVALID
    assert rasa.messages == ["/greet"]
    with gateway.crm() as crm:
        identity = crm.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == str(CHAT)))
        assert identity is not None
        assert (
            crm.get_one(Customer, identity.customer_id).first_name == "Test"
        )  # a new customer, from Telegram


def test_other_commands_are_text_and_non_text_gets_a_polite_answer(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    telegram.user_writes(CHAT, "/help")
    wait_until(lambda: telegram.sent_to(CHAT), what="the answer")
    telegram.user_sends_location(CHAT)
    sent = wait_until(lambda: telegram.sent_to(CHAT)[1:], what="the notice")
    assert rasa.messages == ["help"]
    assert sent[0]["text"] == wording.UNSUPPORTED


def test_rasa_down_gets_a_holding_answer_on_telegram_and_the_real_one_later(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    rasa.status = 503
    telegram.user_writes(CHAT, "hello?")
    holding = wait_until(lambda: telegram.sent_to(CHAT), what="the holding answer")
    rasa.status = 200
    later = wait_until(lambda: telegram.sent_to(CHAT)[1:], what="the real answer")
    assert holding[0]["text"] == wording.HOLDING
    assert later[0]["text"] == "You said: hello?"


def test_a_proactive_message_reaches_a_telegram_customer(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    import httpx

    with gateway.crm() as crm:
        customer = Customer(first_name="Ben")
        customer.identities.append(ChannelIdentity(channel=Channel.TELEGRAM, external_id=str(CHAT)))
        crm.add(customer)
        crm.commit()
        customer_id = customer.id

    response = httpx.post(
        f"{gateway.url}/internal/proactive",
        json={"customer_id": customer_id, "intent": "EXTERNAL_checkin", "idempotency_key": "tg-1"},
        headers={"Authorization": f"Bearer {gateway.settings.internal_api_token}"},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json()["sender_id"] == f"telegram:{CHAT}"
    assert response.json()["messages"][0]["status"] == "sent"
    assert [m["text"] for m in telegram.sent_to(CHAT)] == ["Hi again! Is everything fine with your order?"]


def test_the_internal_api_makes_deep_links_for_the_running_bot(
    gateway: RunningGateway, telegram: StandInBotApi
) -> None:
    import httpx

    with gateway.crm() as crm:
        customer = Customer(first_name="Chloé")
        crm.add(customer)
        crm.commit()
        customer_id = customer.id
    headers = {"Authorization": f"Bearer {gateway.settings.internal_api_token}"}

    link = httpx.post(
        f"{gateway.url}/internal/telegram-link", json={"customer_id": customer_id}, headers=headers
    )
    unknown = httpx.post(
        f"{gateway.url}/internal/telegram-link", json={"customer_id": 10**9}, headers=headers
    )
    anonymous = httpx.post(f"{gateway.url}/internal/telegram-link", json={"customer_id": customer_id})

    assert link.json()["url"].startswith("https://t.me/careloop_test_bot?start=link-")
    assert (unknown.status_code, anonymous.status_code) == (404, 401)
