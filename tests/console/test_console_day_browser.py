"""Issue 19 in a real browser (Chromium) against the real gateway with a stand-in Rasa, as an agent
and a marketer use the console all day: the transcript follows new messages (a customer and an agent
acting in two contexts), an overdue callback is flagged, a campaign asks before it is scheduled and
nothing happens when that is dismissed, the campaign form shows every mistake at once, and the
progress page updates without a reload. No page may have a CSP violation. Screenshots of the queue,
a chat, the form with its errors and a campaign's progress land in var/artifacts/ (CI keeps them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from bot.crm.consent import set_consent
from bot.crm.models import (
    HANDOFF_CALLBACK,
    Author,
    Campaign,
    CampaignStatus,
    Channel,
    ConsentPurpose,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Handoff,
    InboundStatus,
    Message,
    OutboundStatus,
    OutreachKind,
    Segment,
    utcnow,
)
from tests.browser import browser, page
from tests.console.conftest import desk_stack, open_handoff_for
from tests.console.test_desk_browser import _visitor, customer_says, log_in
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(180)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));
"""


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_violations(page: Page) -> None:
    assert page.evaluate("() => window.__violations") == []


def at_bottom(agent: Page) -> bool:
    return bool(
        agent.evaluate(
            "() => { const l = document.getElementById('log');"
            " return l.scrollHeight - l.scrollTop - l.clientHeight < 40; }"
        )
    )


def earlier_messages(stack: RunningGateway, sender_id: str, count: int) -> None:
    """A long conversation before the handoff, so that the transcript overflows its box."""
    with stack.crm() as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
        assert conversation is not None
        start = utcnow() - timedelta(minutes=count + 5)
        for n in range(count):
            inbound = n % 2 == 0
            crm.add(
                Message(
                    conversation_id=conversation.id,
                    direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                    author=Author.CUSTOMER if inbound else Author.BOT,
                    text=f"earlier message {n}",
                    delivery_status=InboundStatus.PROCESSED if inbound else OutboundStatus.SENT,
                    created_at=start + timedelta(minutes=n),
                )
            )
        crm.commit()


def test_the_transcript_follows_new_messages_unless_the_agent_scrolled_up(
    stack: RunningGateway, rasa: StandInRasa, browser: Browser, page: Page
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    sender = f"web:{_visitor(page)}"
    earlier_messages(stack, sender, 30)
    _, handoff_id = open_handoff_for(stack, rasa, sender)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    agent = context.new_page()
    try:
        log_in(agent, stack, "alex")
        agent.goto(f"{stack.url}/console/queue")
        row = agent.locator(f'#waiting tr[data-handoff="{handoff_id}"]')
        expect(row).to_contain_text("Guest from the website")  # not "customer #…"
        expect(row).to_contain_text("the customer asked for a person")  # not customer_request
        screenshot(agent, "queue")
        row.get_by_role("button", name="Claim").click()
        expect(agent.locator("#chat-status")).to_have_text("You are handling this chat.")
        expect(agent.locator("#desk.is-live")).to_be_attached()
        assert at_bottom(agent)  # the chat opens at its newest message

        customer_says(page, "Are you there?")
        expect(agent.locator("#log .msg-customer .text").last).to_have_text("Are you there?")
        assert at_bottom(agent)  # followed: the new message is in view

        box = agent.get_by_label("Reply to the customer")
        box.fill("Let me check your order")  # a draft, not sent
        agent.evaluate("() => { document.getElementById('log').scrollTop = 0; }")  # reading back
        customer_says(page, "Hello??")
        expect(agent.locator("#log .msg-customer .text").last).to_have_text("Hello??")
        expect(agent.locator("#new-messages")).to_be_visible()
        assert not at_bottom(agent)  # left where the agent was reading
        assert box.input_value() == "Let me check your order"  # the draft survived the update
        agent.locator("#new-messages").click()
        assert at_bottom(agent)
        expect(agent.locator("#new-messages")).to_be_hidden()

        agent.reload()  # a redraw of the page keeps the draft too
        expect(agent.get_by_label("Reply to the customer")).to_have_value("Let me check your order")
        agent.get_by_label("Reply to the customer").press("Enter")
        expect(agent.locator("#desk-live")).to_have_text("Sent.")  # not "Sent (sent)."
        expect(agent.locator("#log .msg-agent .status").last).to_have_text(re.compile("^(Sent|Delivered)$"))
        screenshot(agent, "chat")
        no_violations(agent)

        agent.get_by_role("button", name="Hand back to the bot").click()
        expect(agent.locator("#desk-done")).to_contain_text("Handed back to the bot.")
    finally:
        context.close()


def test_an_overdue_callback_is_flagged_in_colour_and_words(
    stack: RunningGateway, rasa: StandInRasa, page: Page
) -> None:
    with stack.crm() as crm:
        customer = Customer(first_name="Dana", segment=Segment.MVC)
        crm.add(customer)
        crm.flush()
        crm.add(Conversation(customer_id=customer.id, sender_id="telegram:4242", channel=Channel.TELEGRAM))
        crm.commit()
    _, handoff_id = open_handoff_for(stack, rasa, "telegram:4242", mode=HANDOFF_CALLBACK)
    with stack.crm() as crm:
        handoff = crm.get_one(Handoff, handoff_id)
        handoff.requested_at = utcnow() - timedelta(days=2)
        handoff.callback_by = utcnow() - timedelta(days=1, minutes=2)
        crm.commit()
    page.context.add_init_script(RECORD_VIOLATIONS)
    log_in(page, stack, "alex")
    expect(page.get_by_test_id("home-chats")).to_contain_text("1")
    expect(page.locator(".flag-overdue")).to_contain_text("1 overdue")
    page.goto(f"{stack.url}/console/queue")
    flag = page.locator(f'#waiting tr[data-handoff="{handoff_id}"] .flag-overdue')
    expect(flag).to_have_text("⚠ Callback overdue by 1 day")
    colour = flag.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")  # colour AND words
    expect(page.locator(f'#waiting tr[data-handoff="{handoff_id}"] .wait')).to_have_text(
        re.compile(r"^2 days")
    )
    expect(page.locator(f'#waiting tr[data-handoff="{handoff_id}"] .why')).to_contain_text(
        "most valuable (MVC) +40"
    )
    no_violations(page)


def marketing_audience(stack: RunningGateway) -> None:
    with stack.crm() as crm:
        for name in ("Anna", "Ben", "Cleo"):
            customer = Customer(first_name=name, segment=Segment.MVC)
            crm.add(customer)
            crm.flush()
            set_consent(
                session=crm, customer=customer, purpose=ConsentPurpose.MARKETING, granted=True, source="t"
            )
        crm.commit()


def campaign_status(stack: RunningGateway) -> CampaignStatus:
    with stack.crm() as crm:
        return crm.scalars(select(Campaign)).one().status


def test_a_campaign_asks_before_it_is_scheduled_and_nothing_happens_when_dismissed(
    stack: RunningGateway, page: Page
) -> None:
    marketing_audience(stack)
    page.context.add_init_script(RECORD_VIOLATIONS)
    log_in(page, stack, "mo")
    page.goto(f"{stack.url}/console/campaigns/new")
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    page.get_by_label("Name (only marketers see it)").fill("Winter roast")
    page.get_by_label("Text (at most 1,000 characters)").fill(
        "Hi {first_name}, as a {segment} member: new beans!"
    )
    page.get_by_label("Date").fill(tomorrow)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-text")).to_have_text(
        "Hi Anna, as a Gold member: new beans!"
    )  # no "MVC"
    page.get_by_role("button", name="Save as draft").click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("draft")

    page.get_by_role("button", name="Schedule").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("It will go to 3 customers")
    dialog.get_by_role("button", name="No, go back").click()
    expect(dialog).to_have_count(0)
    assert campaign_status(stack) is CampaignStatus.DRAFT  # dismissed: nothing was scheduled

    page.get_by_role("button", name="Schedule").click()
    page.locator("dialog.confirm").get_by_role("button", name=re.compile("^Yes, schedule it for 3")).click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("scheduled")
    assert campaign_status(stack) is CampaignStatus.SCHEDULED
    no_violations(page)


def test_the_campaign_form_shows_every_mistake_at_once(stack: RunningGateway, page: Page) -> None:
    page.context.add_init_script(RECORD_VIOLATIONS)
    log_in(page, stack, "mo")
    page.goto(f"{stack.url}/console/campaigns/new")
    page.get_by_label("Text (at most 1,000 characters)").fill("Hi {nom}, <b>news</b>")
    page.get_by_label("Last contact at least … days ago").fill("30")
    page.get_by_label("… and at most … days ago").fill("7")
    page.get_by_label("Churn risk at least (0–1)").fill("high")
    page.get_by_role("button", name="Schedule").click()
    errors = page.locator(".field-error")
    expect(errors).to_have_count(4)  # name, message, the days range, churn risk: all at once
    expect(page.locator("#err-last_contact_days_max")).to_contain_text("nobody can match both")
    expect(page.locator("#err-name")).to_be_visible()
    expect(page.get_by_label("Name (only marketers see it)")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).not_to_contain_text("churn_risk_min")  # marketers' words
    screenshot(page, "campaign-form-errors")
    no_violations(page)


def test_the_progress_page_updates_without_a_reload(stack: RunningGateway, page: Page) -> None:
    marketing_audience(stack)
    with stack.crm() as crm:
        campaign = Campaign(
            name="Spring",
            message="Hi",
            audience={},
            schedule={"date": "2026-01-01", "time": "10:00", "every": "once", "zone": "utc"},
            status=CampaignStatus.SENDING,
        )
        crm.add(campaign)
        crm.commit()
        campaign_id = campaign.id
        customers = crm.scalars(select(Customer.id)).all()
    page.context.add_init_script(RECORD_VIOLATIONS)
    log_in(page, stack, "mo")
    page.goto(f"{stack.url}/console/campaigns/{campaign_id}")
    expect(page.locator('[data-figure="sent"]')).to_have_text("0")
    page.evaluate("() => { window.__same_page = true; }")
    with stack.crm() as crm:
        for n, customer_id in enumerate(customers):
            crm.add(
                Delivery(
                    idempotency_key=f"campaign:{campaign_id}:t:customer:{customer_id}",
                    kind=OutreachKind.CAMPAIGN,
                    customer_id=customer_id,
                    campaign_id=campaign_id,
                    status=DeliveryStatus.SENT if n < 2 else DeliveryStatus.QUEUED,
                    sent_at=utcnow() if n < 2 else None,
                )
            )
        crm.commit()
    expect(page.locator('[data-figure="sent"]')).to_have_text("2", timeout=15_000)
    expect(page.get_by_test_id("progress")).to_contain_text(f"2 of {len(customers)} handled")
    assert page.evaluate("() => window.__same_page") is True  # no reload
    screenshot(page, "campaign-progress")
    no_violations(page)
