"""Complaint intake and the retention save end to end (issue 17): the real Rasa server and model,
the real action server, the real CRM."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.crm.models import Complaint, RetentionAttempt, Segment, Severity, Subscription, SubscriptionStatus
from tests.e2e.conftest import Stack, texts
from tests.e2e.test_journeys import seed

pytestmark = pytest.mark.e2e


def outcomes(stack: Stack, cid: int) -> list[tuple[str, str]]:
    with stack.crm() as crm:
        rows = crm.scalars(
            select(RetentionAttempt).where(RetentionAttempt.customer_id == cid).order_by(RetentionAttempt.id)
        )
        return [(a.offer.code if a.offer else "-", a.outcome.value) for a in rows]


def subscription_status(stack: Stack, cid: int) -> SubscriptionStatus:
    with stack.crm() as crm:
        return crm.scalars(select(Subscription).where(Subscription.customer_id == cid)).one().status


def test_late_and_damaged_asks_the_order_and_promises_a_time_in_their_zone(stack: Stack) -> None:
    cid = seed(stack, "dora")
    sender = "web:e2e-dora"
    first = texts(
        stack.say(sender, "My order arrived late and the package was damaged, coffee all over the box")
    )
    assert "Which order" in first and f"CL-9{cid:05d}" in first  # the latest is offered
    filed = texts(stack.say(sender, f"CL-9{cid:05d}"))
    with stack.crm() as crm:
        complaint = crm.scalars(select(Complaint).where(Complaint.customer_id == cid)).one()
        assert complaint.severity is Severity.MEDIUM and complaint.order_id is not None
        assert complaint.description and "coffee all over the box" in complaint.description
    assert f"#{complaint.id}" in filed and "(Europe/Berlin time)" in filed


def test_an_mvc_hears_two_different_offers_then_is_offered_a_person_before_the_cancellation(
    stack: Stack,
) -> None:
    cid = seed(stack, "vera", segment=Segment.MVC, member=True)
    sender = "web:e2e-vera"
    stack.say(sender, "I want to cancel my membership")
    assert "30% off" in texts(stack.say(sender, "it costs too much"))
    assert "Pause" in texts(stack.say(sender, "no"))
    person = texts(stack.say(sender, "no"))
    assert "Before I record your cancellation" in person
    assert subscription_status(stack, cid) is SubscriptionStatus.ACTIVE  # nothing recorded yet
    final = texts(stack.say(sender, "no"))
    assert "recorded your cancellation request" in final
    assert outcomes(stack, cid) == [("PRICE-MVC-30", "declined"), ("PRICE-MVC-PAUSE", "declined")]
    assert subscription_status(stack, cid) is SubscriptionStatus.CANCEL_REQUESTED


def test_an_offer_accepted_today_is_not_offered_again_as_new(stack: Stack) -> None:
    cid = seed(stack, "wim", segment=Segment.MVC, member=True)
    sender = "web:e2e-wim"
    stack.say(sender, "please cancel my subscription")
    assert "30% off" in texts(stack.say(sender, "it costs too much"))
    assert "Thank you for staying" in texts(stack.say(sender, "yes"))
    stack.say(sender, "actually I want to cancel my membership")
    again = texts(stack.say(sender, "it's still too expensive"))
    assert "30% off" not in again and "Pause" in again
    assert outcomes(stack, cid) == [("PRICE-MVC-30", "accepted"), ("PRICE-MVC-PAUSE", "pending")]
