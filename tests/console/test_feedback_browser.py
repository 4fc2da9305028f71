"""The Feedback page in a real browser (Chromium) against the real gateway: a customer's feedback,
given in the widget's chat, is on the page; an agent assigns it to themselves, is told what is
wrong with an empty message, tells the customer what changed, and the customer reads it in the
widget once the scheduler's sender has passed it through the policy gate."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.crm.db import make_engine
from bot.crm.models import Conversation, Customer, FeedbackItem, FeedbackState, utcnow
from bot.crm.surveys import record_comment
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.a11y.axe import serious_violations
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_desk_browser import _visitor, customer_says, log_in
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import INTERNAL_TOKEN, RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(180)

WORDS = 'The <img src=x onerror="window.__pwned=1"> courier left my parcel in the rain'
MESSAGE = "Hi! Because you told us, our couriers now ring first and never leave parcels outside."


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def feedback_from(stack: RunningGateway, sender_id: str) -> int:
    """What the bot's action records when this chat's customer gives feedback."""
    with stack.crm() as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
        assert conversation is not None
        customer = crm.get_one(Customer, conversation.customer_id)
        survey = record_comment(session=crm, customer=customer, comment=WORDS, conversation=conversation)
        crm.commit()
        item = crm.scalar(select(FeedbackItem.id).where(FeedbackItem.survey_id == survey.id))
        assert item is not None
        return item


def test_assign_to_me_and_tell_the_customer(
    stack: RunningGateway, rasa: StandInRasa, browser: Browser, page: Page, request: pytest.FixtureRequest
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    item_id = feedback_from(stack, f"web:{_visitor(page)}")

    agent = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    request.addfinalizer(agent.context.close)
    log_in(agent, stack, "alex")
    agent.get_by_role("link", name="Feedback").click()
    row = agent.locator(f'#theme-delivery tr[data-item="{item_id}"]')
    expect(row).to_contain_text("courier left my parcel in the rain")
    row.get_by_role("link", name=f"#{item_id}").click()
    expect(agent.locator("#feedback-words")).to_have_text(WORDS)  # shown as text, never run
    agent.get_by_role("button", name="Assign to me").click()
    expect(agent.locator("#feedback-done")).to_have_text("The feedback is yours now.")
    expect(agent.locator("#feedback-status")).to_have_attribute("data-state", "in_progress")

    agent.get_by_role("button", name="Tell the customer").click()  # nothing written yet
    expect(agent.locator("#feedback-error")).to_contain_text("Write the message the customer will read.")
    agent.get_by_label(re.compile("^Message to")).fill(MESSAGE)
    agent.get_by_role("button", name="Tell the customer").click()
    expect(agent.locator("#feedback-done")).to_contain_text("Message queued")
    expect(agent.locator("#feedback-told")).to_contain_text("Told by Alex Agent")
    expect(agent.locator("#feedback-status")).to_have_attribute("data-state", "done")
    assert agent.evaluate("() => window.__pwned") is None

    rasa.intents["EXTERNAL_campaign"] = [{"text": "(what we changed, as Rasa says it)"}]
    engine, gateway = make_engine(stack.settings.database_url), HttpGateway(stack.url, INTERNAL_TOKEN)
    request.addfinalizer(engine.dispose)
    request.addfinalizer(gateway.close)
    sender = Sender(
        sessionmaker(bind=engine, expire_on_commit=False),
        gateway,
        Policy(time(0, 0), time(0, 0), weekly_cap=0),  # never quiet; a service message ignores the cap
        clock=utcnow,
        rate_per_second=0,
    )
    assert sender.run_due()["sent"] == 1
    assert rasa.trigger_calls[-1]["entities"]["campaign_text"] == MESSAGE
    expect(page.locator(".cl-msg--bot").last).to_contain_text("(what we changed, as Rasa says it)")
    assert sender.run_due()["sent"] == 0  # told once
    with stack.crm() as crm:
        assert crm.get_one(FeedbackItem, item_id).state is FeedbackState.DONE


def test_the_feedback_pages_have_no_serious_accessibility_violation(
    stack: RunningGateway, page: Page
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    item_id = feedback_from(stack, f"web:{_visitor(page)}")
    log_in(page, stack, "ada")
    page.goto(f"{stack.url}/console/feedback")
    assert serious_violations(page) == [], "/feedback"
    page.goto(f"{stack.url}/console/feedback/{item_id}")
    assert serious_violations(page) == [], "/feedback/<id>"
    page.get_by_label(re.compile("^Message to")).fill("We now <b>ring first</b>.")
    page.get_by_role("button", name="Tell the customer").click()  # the markup warning
    expect(page.locator("#markup-warning")).to_be_visible()
    assert serious_violations(page) == [], "/feedback/<id> with the markup warning"
    page.get_by_role("button", name="Tell the customer").click()  # without ticking: refused again
    expect(page.locator("#markup-warning")).to_be_visible()
    page.get_by_label("Send the text as written anyway").check()
    page.get_by_role("button", name="Tell the customer").click()
    expect(page.locator("#feedback-told")).to_be_visible()
    assert serious_violations(page) == [], "/feedback/<id> told"
