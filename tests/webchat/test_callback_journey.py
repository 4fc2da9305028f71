"""A callback with a way back, in two browsers against the real stack (real Rasa model, action server,
gateway): a guest in the widget asks for a person while nobody is at the console; before promising,
the bot asks how to reach them; the guest gives an email address and reads the promise, with the way
back and the time zone named, in the same words the agent's queue shows beside the address given."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from bot.crm.handoffs import callback_words
from bot.crm.models import Agent, Customer, HandoffStatus
from tests.gateway.harness import wait_until
from tests.webchat.conftest import LiveStack
from tests.webchat.test_browser import REPLY_TIMEOUT, open_chat, say
from tests.webchat.test_desk_handoff import agent_logs_in, handoff_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300, func_only=True)]

EMAIL = "gail.meyer@example.com"


def nobody_at_the_console(live: LiveStack) -> None:
    with live.crm() as crm:
        crm.execute(update(Agent).values(last_seen_at=None))
        crm.commit()


def test_a_guest_nobody_can_take_gives_an_email_and_reads_a_promise_with_its_zone(
    live: LiveStack, page: Page, browser: Browser
) -> None:
    nobody_at_the_console(live)
    customer = page
    open_chat(customer, live)
    say(customer, "I want to talk to a person")
    bot = customer.locator(".cl-msg--bot .cl-text")
    expect(bot.filter(has_text="How should they reach you?")).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(bot.filter(has_text="get back to you by")).to_have_count(0)  # nothing promised yet

    say(customer, EMAIL)
    sender = live.sender_of(customer)
    handoff = wait_until(lambda: handoff_of(live, sender), what="the callback")
    assert handoff.status is HandoffStatus.QUEUED and handoff.mode == "callback" and handoff.callback_by
    with live.crm() as crm:
        zone = crm.get_one(Customer, handoff.customer_id).timezone
    promise = callback_words(
        due=handoff.callback_by, customer_zone=zone, business_zone=live.settings.business_timezone
    )
    expect(bot.filter(has_text=f"a person will get back to you by email {promise}")).to_be_visible(
        timeout=REPLY_TIMEOUT
    )

    agent_context = browser.new_context(viewport={"width": 1280, "height": 900})
    agent_context.set_default_timeout(30_000)
    agent = agent_context.new_page()
    try:
        agent_logs_in(agent, live)
        row = agent.locator(f'#waiting tr[data-handoff="{handoff.id}"]')
        expect(row.locator(".contact")).to_contain_text(f"email given in chat: {EMAIL} (not confirmed)")
        expect(row.locator(".promised")).to_have_text(f"({promise})")
    finally:
        agent_context.close()
