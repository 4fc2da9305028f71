"""A cancellation takes effect at the end of the billing month, as the bot and the mail promise."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import AuditLog, Customer, Product, Subscription, SubscriptionStatus
from bot.crm.retention import billing_month_end, end_due_cancellations, record_cancellation
from tests.factories import make_customer


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("started", "asked", "ends"),
    [
        (utc(2026, 3, 12, 9), utc(2026, 12, 4, 18), utc(2026, 12, 12, 9)),  # later this month
        (utc(2026, 3, 12, 9), utc(2026, 12, 12, 10), utc(2027, 1, 12, 9)),  # just renewed: next month
        (utc(2026, 1, 31, 8), utc(2027, 2, 3), utc(2027, 2, 28, 8)),  # the 31st in a short month
        (utc(2026, 11, 20), utc(2026, 11, 25), utc(2026, 12, 20)),  # in the first month
    ],
)
def test_the_billing_month_ends_on_the_next_monthly_anniversary(
    started: datetime, asked: datetime, ends: datetime
) -> None:
    assert billing_month_end(started, asked) == ends


def _membership(session: Session, started: datetime) -> tuple[Customer, Subscription]:
    customer = make_customer(session)
    product = Product(
        sku=f"PLAN-{customer.id}", name="Plus", category="membership", price=Decimal("9.90"), is_plan=True
    )
    session.add(product)
    session.flush()
    subscription = Subscription(
        customer_id=customer.id,
        product_id=product.id,
        status=SubscriptionStatus.ACTIVE,
        monthly_price=product.price,
        started_at=started,
    )
    session.add(subscription)
    session.flush()
    return customer, subscription


def test_a_requested_cancellation_ends_when_its_billing_month_does_and_not_before(session: Session) -> None:
    customer, subscription = _membership(session, started=utc(2026, 3, 12, 9))
    record_cancellation(session=session, customer=customer, conversation=None, now=utc(2026, 12, 4, 18))
    contact_before = customer.last_contact_at

    assert end_due_cancellations(session=session, now=utc(2026, 12, 12, 8, 59)) == 0
    assert subscription.status is SubscriptionStatus.CANCEL_REQUESTED

    assert end_due_cancellations(session=session, now=utc(2026, 12, 12, 9, 0)) == 1
    assert subscription.status is SubscriptionStatus.CANCELLED
    assert subscription.cancelled_at == utc(2026, 12, 12, 9)
    assert customer.last_contact_at == contact_before  # nothing the customer did
    audit = session.scalars(select(AuditLog).where(AuditLog.entity_id == subscription.id)).all()
    assert [(a.action, a.details["ended_at"]) for a in audit if a.entity == "subscription"] == [
        ("cancellation_took_effect", "2026-12-12T09:00:00+00:00")
    ]
    assert end_due_cancellations(session=session, now=utc(2026, 12, 20)) == 0  # once


def test_a_membership_kept_after_all_is_not_cancelled(session: Session) -> None:
    _, subscription = _membership(session, started=utc(2026, 3, 12, 9))
    subscription.status = SubscriptionStatus.ACTIVE  # the customer took an offer instead
    subscription.cancel_requested_at = utc(2026, 12, 4)

    assert end_due_cancellations(session=session, now=utc(2027, 1, 1)) == 0
    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.cancelled_at is None
