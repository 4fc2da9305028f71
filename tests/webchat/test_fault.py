"""Faults with the real services: Rasa stops mid-conversation, the gateway restarts while a
visitor types. The visitor is told the truth at once, nothing is lost, and the chat carries on."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from bot.crm.models import Author, Direction, InboundStatus
from bot.gateway import wording
from tests.gateway.harness import wait_until
from tests.webchat.conftest import LiveStack
from tests.webchat.test_browser import REPLY_TIMEOUT, open_chat, say

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400, func_only=True)]


def test_rasa_stopping_mid_conversation_loses_nothing_and_the_chat_resumes(
    live: LiveStack, page: Page
) -> None:
    open_chat(page, live)
    say(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").first).to_be_visible(timeout=REPLY_TIMEOUT)
    sender = live.sender_of(page)
    answered = len(page.locator(".cl-msg--bot:not(.cl-greeting)").all())

    live.stop("rasa")
    try:
        say(page, "where is my order?")
        expect(page.locator(".cl-msg--system .cl-text")).to_have_text(wording.HOLDING, timeout=10_000)
        say(page, "hello, anyone there?")
        expect(page.locator(".cl-pending")).to_have_count(0)
        waiting = [m for m in live.messages(sender) if m.direction == Direction.INBOUND][1:]
        assert [(m.text, m.delivery_status) for m in waiting] == [
            ("where is my order?", InboundStatus.RECEIVED),
            ("hello, anyone there?", InboundStatus.RECEIVED),
        ]
        assert page.locator(".cl-msg--system").count() == 1  # told once, not once per message
    finally:
        live.start("rasa")

    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").nth(answered + 1)).to_be_visible(
        timeout=REPLY_TIMEOUT
    )
    wait_until(
        lambda: all(
            m.delivery_status == InboundStatus.PROCESSED
            for m in live.messages(sender)
            if m.direction == Direction.INBOUND
        ),
        timeout=60,
        what="both waiting messages to be answered",
    )
    authors = [m.author for m in live.messages(sender)]
    assert authors.count(Author.SYSTEM) == 1 and authors.count(Author.CUSTOMER) == 3
    say(page, "thanks")  # the conversation simply carries on
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").nth(answered + 2)).to_be_visible(
        timeout=REPLY_TIMEOUT
    )


def test_messages_typed_while_the_gateway_restarts_are_sent_when_it_is_back(
    live: LiveStack, page: Page
) -> None:
    open_chat(page, live)
    say(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").first).to_be_visible(timeout=REPLY_TIMEOUT)
    sender = live.sender_of(page)

    live.stop("gateway")
    try:
        expect(page.locator(".cl-status")).to_have_text(re.compile("Reconnecting|Offline"), timeout=10_000)
        say(page, "typed while you were away")
        expect(page.locator(".cl-msg--customer.cl-pending .cl-state")).to_have_text("Waiting for connection…")
        assert [m.text for m in live.messages(sender) if m.direction == Direction.INBOUND] == ["hi"]
    finally:
        live.start("gateway")

    expect(page.locator(".cl-pending")).to_have_count(0, timeout=REPLY_TIMEOUT)
    expect(page.locator(".cl-status")).to_have_text("")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").nth(1)).to_be_visible(timeout=REPLY_TIMEOUT)
    inbound = [m.text for m in live.messages(sender) if m.direction == Direction.INBOUND]
    assert inbound == ["hi", "typed while you were away"]
