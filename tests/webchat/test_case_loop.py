"""The complaint case loop end to end, in two browsers against the real stack (real Rasa model,
action server, gateway, scheduler service): a customer complains in the widget on the demo shop
page; the case is on the Cases page of the delivery team; an agent takes it and asks a question,
which the scheduler delivers to the widget; the customer's answer lands on the case and the bot
thanks them with the case's team and due time; the agent resolves it with a refund and the customer
reads the resolution; three days later (the clock of the scheduler's sweep and send functions moved
on) the revisit asks "is everything fine now?";
the customer says no, and the case is back with the same owner at top priority."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.actions.formatting import moment_in_zone
from bot.crm.cases import question_key
from bot.crm.complaints import TOP_PRIORITY, followup_key
from bot.crm.db import make_engine
from bot.crm.models import (
    Agent,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    Remedy,
    Team,
)
from scheduler import checkins
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.e2e.outreach.conftest import afternoon_zone
from tests.gateway.harness import wait_until
from tests.webchat.conftest import LiveStack
from tests.webchat.test_browser import REPLY_TIMEOUT, open_chat, say
from tests.webchat.test_desk_handoff import agent_logs_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600, func_only=True)]

REVISIT_AFTER = timedelta(days=3, minutes=5)  # resolve_complaint plans the revisit three days on
ADDRESS = "Lindenstrasse 12, 10969 Berlin"


def bot_says(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.locator(".cl-msg--bot .cl-text").filter(has_text=text).last).to_be_visible(
        timeout=REPLY_TIMEOUT
    )


def give_an_order(live: LiveStack, sender: str) -> str:
    """The visitor's customer record gets a delivered order (as the shop's sync would), and lives
    where it is early afternoon, so quiet hours hold nothing back today or three days on."""
    with live.crm() as crm:
        conversation = crm.scalars(select(Conversation).where(Conversation.sender_id == sender)).one()
        customer = crm.get_one(Customer, conversation.customer_id)
        customer.timezone = afternoon_zone(datetime.now(timezone.utc) + timedelta(minutes=10))
        now = datetime.now(timezone.utc)
        number = f"CL-9{customer.id:05d}"
        crm.add(
            Order(
                number=number,
                customer_id=customer.id,
                status=OrderStatus.DELIVERED,
                total=Decimal("32.00"),
                placed_at=now - timedelta(days=5),
                delivered_at=now - timedelta(days=3),
                carrier="DHL",
                tracking_code="TRK-LOOP",
            )
        )
        crm.commit()
        return number


def case_of(live: LiveStack, sender: str) -> Complaint | None:
    with live.crm() as crm:
        return crm.scalar(
            select(Complaint)
            .join(Conversation, Conversation.customer_id == Complaint.customer_id)
            .where(Conversation.sender_id == sender)
        )


def delivery_status(live: LiveStack, key: str) -> DeliveryStatus | None:
    with live.crm() as crm:
        return crm.scalar(select(Delivery.status).where(Delivery.idempotency_key == key))


def revisit_three_days_on(live: LiveStack, complaint_id: int) -> str:
    """The scheduler's sweep and send functions, run with their clock three days on: the sweep
    completes the revisit the resolution planned, the sender decides and sends it through the gateway."""
    later = datetime.now(timezone.utc) + REVISIT_AFTER
    factory = sessionmaker(bind=make_engine(live.settings.database_url), expire_on_commit=False)
    with factory.begin() as session:
        checkins.complaint_followups(session=session, now=later)
        delivery_id = session.scalars(
            select(Delivery.id).where(Delivery.idempotency_key == followup_key(complaint_id))
        ).one()
    settings = live.settings
    gateway = HttpGateway(settings.gateway_url, settings.internal_api_token)
    try:
        sender = Sender(
            factory,
            gateway,
            Policy.parse(settings.outreach_quiet_hours, settings.outreach_weekly_cap),
            clock=lambda: later,
        )
        return sender.process(delivery_id)
    finally:
        gateway.close()


def test_a_complaint_from_the_widget_is_worked_resolved_with_a_refund_revisited_and_reopened(
    live: LiveStack, page: Page, browser: Browser
) -> None:
    agent_context = browser.new_context(viewport={"width": 1280, "height": 900})
    agent_context.set_default_timeout(30_000)
    agent = agent_context.new_page()
    try:
        customer = page
        open_chat(customer, live)
        say(customer, "hi")
        expect(customer.locator(".cl-msg--bot:not(.cl-greeting)").first).to_be_visible(timeout=REPLY_TIMEOUT)
        sender = live.sender_of(customer)
        number = give_an_order(live, sender)

        # 1. The customer complains in the widget and the bot files the case.
        say(customer, "My parcel arrived completely crushed and the mug inside is broken")
        bot_says(customer, "Which order is it about?")
        customer.locator(".cl-chip").filter(has_text=number).last.click()
        bot_says(customer, re.compile(r"case #\d+"))
        case = wait_until(lambda: case_of(live, sender), what="the case in the CRM")
        assert (case.team, case.status, case.owner_id) == (Team.LOGISTICS, ComplaintStatus.OPEN, None)

        # 2. It is on the Cases page of the delivery team, where the demo agent works.
        agent_logs_in(agent, live)
        agent.goto(f"{live.url}/console/cases?team=logistics")
        row = agent.locator(f'#case-rows tr[data-case="{case.id}"]')
        expect(row.locator("td").nth(2)).to_have_text("Logistics")
        expect(row.locator("td").nth(3)).to_have_text("open")
        expect(row.locator("td").nth(5)).to_have_text("—")  # nobody owns it yet

        # 3. The agent takes it and asks a question; the scheduler delivers it to the widget.
        row.get_by_role("link", name=f"#{case.id}").click()
        expect(agent.locator("#case-words")).to_contain_text("arrived completely crushed")
        expect(agent.locator("#case-order")).to_contain_text(number)
        agent.get_by_role("button", name="Take this case").click()
        expect(agent.locator("#case-done")).to_have_text("The case is yours now.")
        agent.get_by_label("Ask the customer").fill("Could you confirm your delivery address?")
        agent.get_by_role("button", name="Ask", exact=True).click()
        expect(agent.locator("#case-done")).to_contain_text("Question queued")
        expect(agent.locator("#case-status")).to_have_attribute("data-state", "waiting_on_customer")
        bot_says(customer, f"(case #{case.id}): Could you confirm your delivery address? Just reply here.")
        with live.crm() as crm:
            asked = crm.scalars(
                select(CaseEvent.id).where(
                    CaseEvent.complaint_id == case.id, CaseEvent.kind == CaseEventKind.QUESTION
                )
            ).one()
        # The scheduler records the send once the gateway has answered; the widget may show it first.
        wait_until(
            lambda: (
                delivery_status(live, question_key(case.id, asked))
                in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
            ),
            timeout=30,
            what="the question recorded as sent",
        )

        # 4. The customer answers in the widget; the answer lands on the case.
        say(customer, ADDRESS)
        wait_until(
            lambda: (case_of(live, sender) or case).status is ComplaintStatus.IN_PROGRESS,
            timeout=30,
            what="the answer to put the case back in progress",
        )
        agent.reload()
        expect(agent.locator("#case-status")).to_have_attribute("data-state", "in_progress")
        expect(agent.locator('#history li[data-kind="answer"]')).to_contain_text(ADDRESS)
        # The bot thanks them truthfully: the case, its team and its real due time in their zone.
        with live.crm() as crm:
            answered = crm.get_one(Complaint, case.id)
            due = moment_in_zone(answered.sla_due_at, crm.get_one(Customer, answered.customer_id).timezone)
        bot_says(
            customer,
            f"Thank you — I've added that to case #{case.id}. Our Logistics team has it and will get back "
            f"to you by {due}.",
        )
        expect(
            customer.locator(".cl-msg--bot .cl-text").filter(has_text="not something I can help")
        ).to_have_count(0)

        # 5. The agent resolves it with a refund; the customer reads what was done.
        resolution = "We're sorry the mug broke in transit; we've refunded the order."
        agent.get_by_label("Resolution (the customer reads this)").fill(resolution)
        agent.get_by_label("Remedy").select_option("refund")
        agent.get_by_role("button", name="Resolve and tell the customer").click()
        expect(agent.locator("#case-done")).to_contain_text("Resolved.")
        expect(agent.locator("#case-status")).to_have_attribute("data-state", "resolved")
        bot_says(
            customer,
            f"Update on your complaint (case #{case.id}): {resolution} "
            f"Your refund of €32.00 for order {number} is approved.",
        )
        with live.crm() as crm:
            resolved = crm.get_one(Complaint, case.id)
            refund = crm.get_one(Refund, resolved.refund_id)
            owner = crm.scalars(select(Agent).where(Agent.username == "agent")).one()
        assert (resolved.status, resolved.remedy, resolved.owner_id) == (
            ComplaintStatus.RESOLVED,
            Remedy.REFUND,
            owner.id,
        )
        assert (refund.status, refund.amount) == (RefundStatus.APPROVED, Decimal("32.00"))

        # 6. Three days on, the revisit asks; the customer says it is not fine.
        assert revisit_three_days_on(live, case.id) == "sent"
        checkin = customer.locator(".cl-msg--bot").filter(has_text="is everything fine now?").last
        expect(checkin).to_be_visible(timeout=REPLY_TIMEOUT)
        checkin.get_by_role("button", name="No, still a problem").click()
        bot_says(customer, f"I've reopened case #{case.id} with top priority")

        # 7. The case is back with the same owner, at top priority, on the page and in the CRM.
        with live.crm() as crm:
            reopened = crm.get_one(Complaint, case.id)
        assert (reopened.status, reopened.owner_id, reopened.priority) == (
            ComplaintStatus.REOPENED,
            owner.id,
            TOP_PRIORITY,
        )
        agent.goto(f"{live.url}/console/cases?mine=yes")
        row = agent.locator(f'#case-rows tr[data-case="{case.id}"]')
        expect(row.locator(".flag")).to_have_text("top priority")
        expect(row.locator("td").nth(3)).to_have_text("reopened")
        expect(row.locator("td").nth(5)).to_contain_text("(you)")
        row.get_by_role("link", name=f"#{case.id}").click()
        status = agent.locator("#case-status")
        expect(status).to_have_attribute("data-state", "reopened")
        expect(status).to_contain_text("top priority")
        expect(status).to_contain_text("(you)")
        expect(agent.locator('#history li[data-kind="reopened"]')).to_contain_text("not solved")
        assert delivery_status(live, followup_key(case.id)) is DeliveryStatus.SENT
    finally:
        agent_context.close()
