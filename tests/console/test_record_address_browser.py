"""The customer's postal address and its changes on their record, beside a case and beside a chat, in
a real browser (Chromium) against the real gateway: what the customer said in chat is shown as
text, markup included, and never run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from bot.crm import addresses
from bot.crm.models import (
    HANDOFF_LIVE,
    AuditLog,
    Channel,
    Complaint,
    Conversation,
    ConversationStatus,
    Customer,
    Handoff,
    HandoffStatus,
    Team,
    utcnow,
)
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_cases import file_case, in_team
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)

HOSTILE_LINE = '<img src=x onerror="window.__pwned=1"> Flat 2 & <b>back</b>'


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def moved_in_chat(stack: RunningGateway, case_id: int) -> int:
    """The case's customer lived in Leeds (the old line held markup) and told the bot they moved to
    Berlin; return the customer's id."""
    with stack.crm() as crm:
        complaint = crm.get(Complaint, case_id)
        assert complaint is not None
        customer = crm.get_one(Customer, complaint.customer_id)
        leeds = addresses.parse_address("14 Park Lane, Leeds LS1 4DY, UK")
        addresses.assign(customer, leeds, now=utcnow())
        crm.flush()
        berlin = addresses.parse_address("my new address is Hauptstraße 12, 10115 Berlin, Germany")
        addresses.change_address(session=crm, customer=customer, address=berlin, source="web", now=utcnow())
        # An old address kept as it was stored, markup and all: the page must show it as text.
        crm.add(
            AuditLog(
                actor="customer",
                action="address_changed",
                entity="customer",
                entity_id=customer.id,
                details={"source": "telegram", "old": {"line1": HOSTILE_LINE, "city": "Leeds"}},
            )
        )
        crm.commit()
        return customer.id


def handed_off(stack: RunningGateway, customer_id: int) -> int:
    """A web chat of the customer waiting for an agent; return the handoff's id."""
    with stack.crm() as crm:
        conversation = Conversation(
            sender_id="web:address-record",
            customer_id=customer_id,
            channel=Channel.WEB,
            status=ConversationStatus.HANDED_OFF,
        )
        crm.add(conversation)
        crm.flush()
        handoff = Handoff(
            conversation_id=conversation.id,
            customer_id=customer_id,
            reason="customer_request",
            priority=15,
            status=HandoffStatus.QUEUED,
            mode=HANDOFF_LIVE,
            requested_at=utcnow(),
        )
        crm.add(handoff)
        crm.commit()
        return handoff.id


def shows_the_address_and_its_changes(page: Page, record: Locator) -> None:
    expect(record.get_by_test_id("address")).to_have_text("Hauptstraße 12, 10115 Berlin, Germany")
    expect(record.get_by_test_id("address-history").get_by_role("listitem")).to_have_text(
        [
            re.compile(
                rf"^Changed by the customer in chat on Telegram — before: {re.escape(HOSTILE_LINE)}, Leeds "
            ),
            re.compile(
                r"^Changed by the customer in chat on the website — "
                r"before: 14 Park Lane, Leeds LS1 4DY, United Kingdom \d{4}-\d{2}-\d{2}$"
            ),
        ]
    )
    assert record.locator("img, b").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_the_record_beside_a_case_and_a_chat_shows_the_address_and_where_it_was_before(
    stack: RunningGateway, page: Page
) -> None:
    in_team(stack, "alex", Team.LOGISTICS)
    case_id = file_case(stack)
    customer_id = moved_in_chat(stack, case_id)
    handoff_id = handed_off(stack, customer_id)
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill("alex")
    page.get_by_label("Password").fill("alex-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()

    page.goto(f"{stack.url}/console/cases/{case_id}")
    shows_the_address_and_its_changes(page, page.get_by_role("complementary", name="Customer record"))

    page.goto(f"{stack.url}/console/chats/{handoff_id}")
    shows_the_address_and_its_changes(page, page.get_by_role("complementary", name="Customer record"))
