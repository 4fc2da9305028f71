"""A person takes over and hands back, in two browsers against the real stack (real Rasa model,
action server, gateway): the customer in the widget asks for a person; an agent sees the chat
appear in the console's queue without reloading, claims it and replies; the customer's next
message reaches the agent and not the bot; the agent hands back; the bot answers the customer's
last unanswered message first, then asks for a rating, and the customer's rating lands in the CRM.
And a chat closed with the customer: the agent closes with a resolution the customer reads in the
widget, and the customer's next message reaches the same agent, not the bot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from bot.crm.models import (
    Author,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    InboundStatus,
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
            (InboundStatus.PROCESSED, "agent")
        ]
        box.fill("Sorry about that. A replacement grinder goes out today.")
        box.press("Enter")
        expect(customer.locator(".cl-msg--agent .cl-text").last).to_contain_text("A replacement grinder")
        say(customer, "what are your opening hours?")  # the agent hands back without answering it
        expect(agent.locator("#log .msg-customer .text").last).to_have_text("what are your opening hours?")

        agent.get_by_role("button", name="Hand back to the bot").click()
        expect(agent.get_by_role("heading", name="Queue")).to_be_visible()
        rating = customer.locator(".cl-msg--bot").filter(has_text="How did we do?")
        expect(rating).to_be_visible(timeout=REPLY_TIMEOUT)
        after = customer.locator(".cl-msg--bot:not(.cl-greeting) .cl-text").all_inner_texts()[bot_lines:]
        # The bot answers the waiting question first (not with the hand-back line), then the rating.
        assert len(after) == 3 and "I'm back with you" not in after[0], after
        assert "I'm back with you" in after[1] and "How did we do?" in after[2], after
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


def test_a_chat_closed_with_a_resolution_the_customer_reads_and_a_follow_up_to_the_same_agent(
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
        agent.locator(f'#waiting tr[data-handoff="{handoff.id}"]').get_by_role("button", name="Claim").click()
        expect(agent.locator("#chat-status")).to_have_text("You are handling this chat.")
        say(customer, "My new bag arrived torn")
        expect(agent.locator("#log .msg-customer .text").last).to_have_text("My new bag arrived torn")

        resolution = "<b>A new bag</b> is on its way & arrives Tuesday."
        agent.get_by_label("Resolution — sent to the customer as written").fill(resolution)
        agent.get_by_role("button", name="Close and send").click()
        dialog = agent.get_by_role("dialog")
        expect(dialog).to_contain_text(f"The customer reads, exactly as written: \u201c{resolution}\u201d")
        dialog.get_by_role("button", name="Yes, go ahead").click()
        expect(agent.locator("#desk-done")).to_contain_text("Your resolution was sent to the customer")

        expect(customer.locator(".cl-msg--agent .cl-text").last).to_have_text(resolution)  # as text
        assert customer.locator(".cl-msg--agent b").count() == 0
        bot_lines = customer.locator(".cl-msg--bot:not(.cl-greeting)").count()

        say(customer, "When will the new bag arrive?")

        expect(customer.locator(".cl-msg .cl-text").filter(has_text="who just helped you")).to_be_visible(
            timeout=REPLY_TIMEOUT
        )
        row = agent.locator("#claimed tr:has(.chip.follow-up)")
        expect(row).to_be_visible()  # the queue page shows it live, held by this agent
        row.get_by_role("link", name="Continue").click()
        expect(agent.locator("#chat-status")).to_have_text("You are handling this chat.")
        expect(agent.locator("#log .msg-customer .text").last).to_have_text("When will the new bag arrive?")
        customer.wait_for_timeout(3000)  # time enough for a bot that wrongly answers
        assert customer.locator(".cl-msg--bot:not(.cl-greeting)").count() == bot_lines

        with live.crm() as crm:
            closed = crm.get_one(Handoff, handoff.id)
            follow_up = crm.scalar(
                select(Handoff).where(
                    Handoff.conversation_id == closed.conversation_id, Handoff.id != closed.id
                )
            )
        assert (closed.status, closed.resolution) == (HandoffStatus.CLOSED, resolution)
        assert follow_up is not None
        assert (follow_up.status, follow_up.reason, follow_up.agent_id) == (
            HandoffStatus.CLAIMED,
            "follow_up",
            closed.agent_id,
        )
    finally:
        agent_context.close()
