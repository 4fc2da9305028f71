"""The churn risk follows the customer's events at once, not only at night: each write path that moves a
factor (a complaint filed, resolved, reopened or breached, a rating, a reply to our message, a
membership change) rescores its customer through the nightly computation, on SQLite and PostgreSQL,
with the clock each call is given."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.crm import churn
from bot.crm.complaints import file_complaint, reopen_complaint, resolve_complaint
from bot.crm.models import (
    Author,
    Channel,
    ComplaintCategory,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    InboundStatus,
    LeaveReason,
    Message,
    Offer,
    OfferKind,
    OutreachKind,
    Product,
    Subscription,
    SubscriptionStatus,
)
from bot.crm.retention import apply_offer, end_due_cancellations, record_cancellation
from bot.crm.sla import WALL_CLOCK
from bot.crm.surveys import record_rating
from scheduler import sla
from scheduler.campaigns.replies import attribute_replies
from scheduler.policy import Policy
from tests.factories import NOW, make_customer, make_order

POLICY = Policy(quiet_start=time(21, 0), quiet_end=time(9, 0), weekly_cap=3)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def steady(session: Session) -> Customer:
    """Orders every 20 days, the last 10 days ago, a member: nothing is wrong (risk 0)."""
    customer = make_customer(session, created_at=ago(400))
    for days in (50, 30, 10):
        make_order(session, customer, days_ago=days)
    plan = Product(sku=f"PLAN-{customer.id}", name="Club", category="plan", price=Decimal("9"), is_plan=True)
    session.add(plan)
    session.flush()
    session.add(
        Subscription(
            customer_id=customer.id,
            product_id=plan.id,
            status=SubscriptionStatus.ACTIVE,
            monthly_price=Decimal("9"),
            started_at=ago(300),
        )
    )
    churn.refresh_customer(session=session, customer_id=customer.id, now=ago(1))
    assert customer.churn_risk == 0.0
    return customer


def risk(customer: Customer) -> float:
    return customer.churn_risk


def test_a_complaint_filed_raises_the_risk_and_its_end_moves_it(session: Session) -> None:
    customer = steady(session)
    filed = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.DELIVERY,
        description="late",
        order=None,
        angry=False,
        now=NOW,
    )
    assert risk(customer) == 0.12 and customer.churn_scored_at == NOW  # one open case, at once
    complaint = filed.complaint
    resolve_complaint(
        session=session, complaint=complaint, resolution="sent again", now=NOW + timedelta(hours=1)
    )
    assert risk(customer) == 0.05  # on time: only a recent complaint now
    reopen_complaint(session=session, complaint=complaint, customer=customer, now=NOW + timedelta(hours=2))
    assert risk(customer) == 0.12  # open again
    resolve_complaint(session=session, complaint=complaint, resolution="again", now=NOW + timedelta(days=5))
    assert risk(customer) == 0.43  # resolved after its promise, it ended badly: 1 - 0.95 * 0.6


def test_a_breach_found_by_the_sla_clock_raises_the_risk(session: Session) -> None:
    customer = steady(session)
    complaint = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.DELIVERY,
        description="late",
        order=None,
        angry=False,
        now=NOW,
    ).complaint
    before = risk(customer)
    late = complaint.sla_due_at + timedelta(days=3)  # too late for an honest update: breached at once
    assert sla.act_on(session=session, complaint_id=complaint.id, now=late, rules=WALL_CLOCK, policy=POLICY)
    assert risk(customer) > before and customer.churn_scored_at == late
    assert any(r["factor"] == "breached_complaints" for r in customer.churn_reasons)


def test_a_low_rating_raises_the_risk_and_a_good_one_does_not(session: Session) -> None:
    happy, unhappy = steady(session), steady(session)
    record_rating(session=session, customer=happy, score=5, now=NOW)
    record_rating(session=session, customer=unhappy, score=1, now=NOW)
    assert risk(happy) == 0.0 and happy.churn_scored_at == NOW
    # 1/5 and the recovery case it opens: 1 - 0.65 * 0.88
    assert risk(unhappy) == 0.43


def test_a_reply_to_our_messages_lowers_the_risk(session: Session) -> None:
    customer = steady(session)
    for n, days in enumerate((20, 10)):
        session.add(
            Delivery(
                idempotency_key=f"test:{customer.id}:{n}",
                kind=OutreachKind.CAMPAIGN,
                customer_id=customer.id,
                status=DeliveryStatus.SENT,
                sent_at=ago(days),
            )
        )
    session.flush()
    churn.refresh_customer(session=session, customer_id=customer.id, now=ago(1))
    assert risk(customer) == 0.25  # two in a row unanswered
    conversation = Conversation(
        sender_id=f"web:reply-{customer.id}", customer_id=customer.id, channel=Channel.WEB
    )
    session.add(conversation)
    session.flush()
    session.add(
        Message(
            conversation_id=conversation.id,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text="yes please",
            delivery_status=InboundStatus.PROCESSED,
            created_at=ago(10) + timedelta(hours=5),
        )
    )
    session.flush()
    assert attribute_replies(session=session, now=ago(9)) == 1
    assert risk(customer) == 0.0 and customer.churn_scored_at == ago(9)


def test_membership_changes_move_the_risk(session: Session) -> None:
    asking, pausing = steady(session), steady(session)
    record_cancellation(session=session, customer=asking, conversation=None, now=NOW)
    assert risk(asking) == 0.5
    end_due_cancellations(session=session, now=NOW + timedelta(days=40))
    assert risk(asking) == 0.35 and asking.churn_scored_at == NOW + timedelta(days=40)
    pause = Offer(
        code="pause-test",
        kind=OfferKind.PAUSE,
        title="Pause for a month",
        description="Pause for a month",
        reason=LeaveReason.PRICE,
    )
    session.add(pause)
    session.flush()
    apply_offer(session=session, customer=pausing, offer=pause, now=NOW)
    assert risk(pausing) == 0.25
