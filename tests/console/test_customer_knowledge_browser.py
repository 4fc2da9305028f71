"""What the CRM learned about a customer, on their record beside the case, in a real browser
(Chromium) against the real gateway: since when they are in their segment and what they were, and
their churn risk with its reasons."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bot.crm.models import Complaint, Customer, Segment, SegmentChange, Team, utcnow
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_cases import file_case, in_team
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def moved_to_mvc(stack: RunningGateway, case_id: int) -> None:
    """The case's customer was MCC from January and MVC since 12 March."""
    with stack.crm() as crm:
        complaint = crm.get(Complaint, case_id)
        assert complaint is not None
        customer_id = complaint.customer_id
        for was, to, rule, at in (
            (None, Segment.MCC, "rising_spend", datetime(2026, 1, 5, 2, 30, tzinfo=timezone.utc)),
            (Segment.MCC, Segment.MVC, "top_value", datetime(2026, 3, 12, 2, 30, tzinfo=timezone.utc)),
        ):
            crm.add(
                SegmentChange(
                    customer_id=customer_id,
                    from_segment=was,
                    to_segment=to,
                    rule=rule,
                    trigger="nightly",
                    changed_at=at,
                )
            )
        customer = crm.get(Customer, customer_id)
        assert customer is not None
        customer.segment = Segment.MVC
        crm.commit()


def drifting(stack: RunningGateway, case_id: int) -> None:
    """The case's customer has been scored: overdue and a membership they asked to cancel."""
    with stack.crm() as crm:
        complaint = crm.get(Complaint, case_id)
        assert complaint is not None
        customer = crm.get(Customer, complaint.customer_id)
        assert customer is not None
        customer.churn_risk, customer.churn_scored_at = 0.68, utcnow()
        customer.churn_reasons = [
            {"factor": "membership", "weight": 0.5, "text": "membership cancellation requested"},
            {"factor": "overdue", "weight": 0.36, "text": "no order for 60 days, usually every 20"},
        ]
        crm.commit()


def test_the_record_beside_a_case_says_since_when_what_before_and_why_at_risk(
    stack: RunningGateway, page: Page
) -> None:
    in_team(stack, "alex", Team.LOGISTICS)
    case_id = file_case(stack)
    moved_to_mvc(stack, case_id)
    drifting(stack, case_id)
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill("alex")
    page.get_by_label("Password").fill("alex-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()

    page.goto(f"{stack.url}/console/cases/{case_id}")
    record = page.get_by_role("complementary", name="Customer record")
    expect(record.get_by_test_id("segment-story")).to_have_text(
        "since 12 March 2026; was MCC (in the top 20% by 12-month value)"
    )
    expect(record.get_by_test_id("churn-risk")).to_have_text("68%")
    expect(record.get_by_test_id("churn-reasons").get_by_role("listitem")).to_have_text(
        [
            "membership cancellation requested — weight 0.50",
            "no order for 60 days, usually every 20 — weight 0.36",
        ]
    )
