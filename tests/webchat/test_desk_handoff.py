"""A person takes over and hands back, in two browsers against the real stack (real Rasa model,
action server, gateway): the customer in the widget asks for a person; an agent sees the chat
appear in the console's queue without reloading, claims it and replies; the customer's next
message reaches the agent and not the bot; the agent hands back; the bot asks for a rating and
the customer's rating lands in the CRM."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from bot.crm.models import (
    Author,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Handoff,
    HandoffStatus,
    Survey,
)
from tests.gateway.harness import wait_until
from tests.webchat.conftest import LiveStack
from tests.webchat.test_browser import REPLY_TIMEOUT, open_chat, say

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300, func_only=True)]


def agent_logs_in(agent: Page, live: LiveStack) -> None:
    agent.goto(f"{live.url}/console/login")
    agent.get_by_label("Username").fill("agent")
    agent.get_by_label("Password").fill("agent-demo")
    agent.get_by_role("button", name="Log in").click()
    expect(agent.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
    agent.goto(f"{live.url}/console/queue")
    expect(agent.locator("#desk.is-live")).to_be_attached()  # the console's live connection is up


def handoff_of(live: LiveStack, sender: str) -> Handoff | None:
    with live.crm() as crm:
        return crm.scalar(
            select(Handoff)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .where(Conversation.sender_id == sender)
            .order_by(Handoff.id.desc())
        )


def test_an_agent_takes_over_and_hands_back_and_the_customer_rates(
    live: LiveStack, page: Page, browser: Browser
) -> None:
    agent_context = browser.new_context(viewport={"width": 1280, "height": 900})
    agent_context.set_default_timeout(30_000)
    agent = agent_context.new_page()
    try:
        agent_logs_in(agent, live)
        customer = page
        open_chat(customer, live)

        say(customer, "let me talk to a person")
        expect(
            customer.locator(".cl-msg--bot .cl-text").filter(has_text="I'm getting a person from our team")
        ).to_be_visible(timeout=REPLY_TIMEOUT)
        sender = live.sender_of(customer)
        handoff = wait_until(lambda: handoff_of(live, sender), what="the handoff")
        assert (handoff.status, handoff.mode) == (HandoffStatus.QUEUED, "live")

        row = agent.locator(f'#waiting tr[data-handoff="{handoff.id}"]')
        expect(row).to_be_visible()  # the queue page was open before: no reload
        row.get_by_role("button", name="Claim").click()
        expect(agent.locator("#chat-status")).to_have_text("You are handling this chat.")
        expect(agent.locator("#log .msg-customer .text").first).to_have_text("let me talk to a person")

        box = agent.get_by_label("Reply to the customer")
        box.fill("Hi, I'm Alex from the team. What happened?")
        expect(customer.locator(".cl-typing")).to_be_visible()  # the customer sees a person typing
        expect(customer.locator(".cl-typing .cl-sr")).to_have_text("Agent is typing")
        box.press("Enter")
        expect(customer.locator(".cl-msg--agent .cl-text")).to_have_text(
            "Hi, I'm Alex from the team. What happened?"
        )
        expect(agent.locator("#log .msg-agent .status").last).to_have_text("Delivered")

        bot_lines = customer.locator(".cl-msg--bot:not(.cl-greeting)").count()
        say(customer, "The grinder I bought stopped working")
        expect(agent.locator("#log .msg-customer .text").last).to_have_text(
            "The grinder I bought stopped working"
        )
        customer.wait_for_timeout(3000)  # time enough for a bot that wrongly answers
        assert customer.locator(".cl-msg--bot:not(.cl-greeting)").count() == bot_lines
        routed = [m for m in live.messages(sender) if m.text == "The grinder I bought stopped working"]
        assert [(m.delivery_status, (m.payload or {}).get("routed")) for m in routed] == [
            (DeliveryStatus.PROCESSED, "agent")
        ]

        agent.get_by_role("button", name="Hand back to the bot").click()
        expect(agent.get_by_role("heading", name="Queue")).to_be_visible()
        expect(customer.locator(".cl-msg--bot .cl-text").filter(has_text="I'm back with you")).to_be_visible(
            timeout=REPLY_TIMEOUT
        )
        rating = customer.locator(".cl-msg--bot").filter(has_text="How did we do?")
        expect(rating).to_be_visible(timeout=REPLY_TIMEOUT)
        rating.get_by_role("button", name="5", exact=True).click()
        expect(customer.locator(".cl-msg--bot:not(.cl-greeting) .cl-text").last).to_contain_text(
            re.compile("thank", re.IGNORECASE), timeout=REPLY_TIMEOUT
        )

        with live.crm() as crm:
            conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender))
            assert conversation is not None and conversation.status == ConversationStatus.BOT
            ended = crm.get_one(Handoff, handoff.id)
            assert ended.status == HandoffStatus.RETURNED and ended.agent_id is not None
            surveys = crm.scalars(select(Survey).where(Survey.customer_id == conversation.customer_id)).all()
        assert [(s.score, s.handoff_id) for s in surveys] == [(5, handoff.id)]  # the rating is about it
        authors = [m.author for m in live.messages(sender)]
        assert Author.AGENT in authors
    finally:
        agent_context.close()
