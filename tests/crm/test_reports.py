"""Loyalty reports: the exact figures from known CRM rows, the period's edges, and an empty CRM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from bot.crm.consent import set_consent
from bot.crm.models import (
    HANDOFF_CALLBACK,
    HANDOFF_LIVE,
    Channel,
    ComplaintCategory,
    ComplaintStatus,
    ConsentPurpose,
    Conversation,
    Customer,
    Handoff,
    HandoffStatus,
    LeaveReason,
    Offer,
    OfferKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Severity,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from bot.crm.reports import (
    CountRow,
    InvalidPeriod,
    SaveRow,
    SourceRow,
    csv_rows,
    last_days,
    parse_days,
    report,
)
from bot.crm.retention import save_rate
from bot.crm.surveys import record_rating
from tests.factories import NOW, make_complaint, make_customer

PERIOD = last_days(30, now=NOW)
OLD = NOW - timedelta(days=40)


def ago(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


@dataclass
class World:
    mvc1: Customer
    mvc2: Customer
    std1: Customer
    std2: Customer
    std3: Customer
    bz1: Customer


def attempt(
    session: Session,
    customer: Customer,
    reason: LeaveReason,
    offer: Offer | None,
    outcome: RetentionOutcome,
    at: datetime,
) -> None:
    session.add(
        RetentionAttempt(
            customer_id=customer.id,
            reason=reason,
            offer_id=offer.id if offer else None,
            outcome=outcome,
            created_at=at,
        )
    )


def offer(session: Session, code: str, title: str, kind: OfferKind) -> Offer:
    row = Offer(code=code, title=title, description="", kind=kind, reason=LeaveReason.PRICE)
    session.add(row)
    session.flush()
    return row


def subscription(session: Session, customer: Customer, product: Product, **fields: object) -> None:
    session.add(
        Subscription(
            **{
                "customer_id": customer.id,
                "product_id": product.id,
                "status": SubscriptionStatus.CANCEL_REQUESTED,
                "monthly_price": Decimal("9.00"),
                "started_at": OLD,
                **fields,
            }
        )
    )


@pytest.fixture
def world(session: Session) -> World:
    """Six customers (and one erased) with saves, ratings, complaints, handoffs and cancellations."""
    w = World(
        mvc1=make_customer(session, segment=Segment.MVC, created_at=OLD),
        mvc2=make_customer(session, segment=Segment.MVC, created_at=ago(5)),
        std1=make_customer(session, segment=Segment.STANDARD, created_at=OLD),
        std2=make_customer(session, segment=Segment.STANDARD, created_at=ago(2)),
        std3=make_customer(session, segment=Segment.STANDARD, created_at=OLD),
        bz1=make_customer(session, segment=Segment.BZ, created_at=OLD),
    )
    make_customer(session, segment=Segment.STANDARD, created_at=ago(1), erased_at=ago(1))
    set_consent(session=session, customer=w.mvc1, purpose=ConsentPurpose.MARKETING, granted=True, source="t")
    set_consent(session=session, customer=w.bz1, purpose=ConsentPurpose.MARKETING, granted=False, source="t")

    discount = offer(session, "d20", "20% off for three months", OfferKind.DISCOUNT)
    pause = offer(session, "pause", "Pause for a month", OfferKind.PAUSE)
    attempt(session, w.mvc1, LeaveReason.PRICE, discount, RetentionOutcome.DECLINED, ago(3))
    attempt(session, w.mvc1, LeaveReason.PRICE, pause, RetentionOutcome.ACCEPTED, ago(3))
    attempt(session, w.mvc2, LeaveReason.PRICE, discount, RetentionOutcome.DECLINED, ago(4))
    attempt(session, w.std1, LeaveReason.QUALITY, pause, RetentionOutcome.ACCEPTED, ago(6))
    attempt(session, w.std2, LeaveReason.QUALITY, discount, RetentionOutcome.PENDING, ago(1))
    attempt(session, w.bz1, LeaveReason.PRICE, None, RetentionOutcome.DECLINED, ago(8))
    # Before the period:
    attempt(session, w.std3, LeaveReason.PRICE, discount, RetentionOutcome.ACCEPTED, ago(31))

    plan = Product(sku="PLAN-T", name="Plan", category="plan", price=Decimal("9.00"), is_plan=True)
    session.add(plan)
    session.flush()
    subscription(session, w.mvc2, plan, cancel_requested_at=ago(3))
    subscription(session, w.bz1, plan, status=SubscriptionStatus.CANCELLED, cancelled_at=ago(10))
    subscription(session, w.std3, plan, cancel_requested_at=ago(31))

    c1 = make_complaint(session, w.mvc1, days_ago=10, resolved_at=ago(10) + timedelta(hours=12))
    make_complaint(
        session,
        w.std1,
        days_ago=5,
        category=ComplaintCategory.BILLING,
        severity=Severity.HIGH,
        sla_due_at=ago(5) + timedelta(hours=4),
        resolved_at=ago(5) + timedelta(hours=30),
    )
    make_complaint(session, w.std3, days_ago=40, severity=Severity.LOW, resolved_at=ago(20))
    make_complaint(
        session,
        w.std2,
        days_ago=2,
        category=ComplaintCategory.PRODUCT_QUALITY,
        status=ComplaintStatus.OPEN,
    )

    conversation = Conversation(sender_id="web:reports-1", customer_id=w.std1.id, channel=Channel.WEB)
    session.add(conversation)
    session.flush()

    def handoff(requested: datetime, claimed_after: float | None, mode: str = HANDOFF_LIVE) -> Handoff:
        row = Handoff(
            conversation_id=conversation.id,
            customer_id=w.std1.id,
            reason="customer_request",
            priority=10,
            status=HandoffStatus.CLOSED,
            mode=mode,
            requested_at=requested,
            claimed_at=requested + timedelta(minutes=claimed_after) if claimed_after is not None else None,
        )
        session.add(row)
        session.flush()
        return row

    h1 = handoff(ago(2), 6)
    handoff(ago(1), 30, HANDOFF_CALLBACK)
    handoff(ago(3), None)
    handoff(ago(40), 1)

    session.add(Survey(customer_id=w.std1.id, handoff_id=h1.id, score=5, created_at=ago(2)))
    session.add(Survey(customer_id=w.mvc1.id, complaint_id=c1.id, score=4, created_at=ago(9)))
    record_rating(session=session, customer=w.mvc2, score=1, now=ago(1))  # opens a recovery case
    session.add(Survey(customer_id=w.bz1.id, score=2, created_at=ago(7)))
    session.add(Survey(customer_id=w.bz1.id, comment="meh", created_at=ago(7)))  # no score: not a rating
    session.add(Survey(customer_id=w.std3.id, score=1, created_at=ago(31)))
    session.flush()
    return w


def test_customers_by_segment_with_consent_and_cancellations(session: Session, world: World) -> None:
    loyalty = report(session=session, period=PERIOD).loyalty
    assert (loyalty.customers, loyalty.new_customers, loyalty.cancellations) == (6, 2, 2)
    rows = {row.segment: row for row in loyalty.segments}
    assert [s for s in rows] == [Segment.MVC, Segment.MCC, Segment.BZ, Segment.STANDARD]
    assert (rows[Segment.MVC].customers, rows[Segment.MVC].share) == (2, pytest.approx(2 / 6))
    assert (rows[Segment.STANDARD].customers, rows[Segment.STANDARD].share) == (3, pytest.approx(0.5))
    assert (rows[Segment.MCC].customers, rows[Segment.MCC].share) == (0, 0)
    assert [rows[s].marketing_consent for s in Segment] == [1, 0, 0, 0]
    assert [rows[s].cancellations for s in Segment] == [1, 0, 1, 0]


def test_save_rate_overall_by_reason_segment_and_offer(session: Session, world: World) -> None:
    retention = report(session=session, period=PERIOD).retention
    assert (retention.attempts, retention.accepted, retention.pending) == (6, 2, 1)
    assert retention.overall == SaveRow("all", asked=4, saved=2, pending=1)
    assert retention.overall.rate == 0.5
    assert retention.by_reason == [SaveRow("price", 3, 1), SaveRow("quality", 1, 1, pending=1)]
    assert [row.rate for row in retention.by_reason] == [pytest.approx(1 / 3), 1.0]
    assert retention.by_segment == [
        SaveRow("MVC", 2, 1),
        SaveRow("BZ", 1, 0),
        SaveRow("standard", 1, 1, pending=1),
    ]
    assert retention.by_offer == [
        SaveRow("20% off for three months", 2, 0, pending=1),
        SaveRow("Pause for a month", 2, 2),
        SaveRow("no offer fitted", 1, 0),
    ]


def test_overall_save_rate_agrees_with_the_retention_module(session: Session, world: World) -> None:
    overall = report(session=session, period=PERIOD).retention.overall
    assert save_rate(session=session, since=PERIOD.start) == (overall.saved, overall.asked)


def test_csat_average_distribution_recovery_and_source(session: Session, world: World) -> None:
    csat = report(session=session, period=PERIOD).satisfaction
    assert (csat.answers, csat.average) == (4, 3.0)
    assert csat.distribution == {1: 1, 2: 1, 3: 0, 4: 1, 5: 1}
    assert (csat.low, csat.recovery_cases) == (2, 1)  # the 2 was stored without the recovery step
    assert csat.by_source == [
        SourceRow("after a handoff", 1, 5.0),
        SourceRow("after a complaint", 1, 4.0),
        SourceRow("other", 2, 1.5),
    ]


def test_complaints_sla_share_median_and_breakdowns(session: Session, world: World) -> None:
    complaints = report(session=session, period=PERIOD).complaints
    # Opened: delivery, billing, product quality, and the recovery case the 1/5 rating opened.
    assert (complaints.opened, complaints.resolved, complaints.resolved_within_sla) == (4, 3, 1)
    assert complaints.sla_share == pytest.approx(1 / 3)
    assert complaints.median_hours_to_resolve == pytest.approx(30.0)  # of 12, 30 and 480 hours
    assert complaints.by_category == [
        CountRow("delivery", 1, 2),
        CountRow("billing", 1, 1),
        CountRow("product_quality", 1, 0),
        CountRow("service", 1, 0),
    ]
    assert complaints.by_severity == [CountRow("low", 0, 1), CountRow("medium", 2, 1), CountRow("high", 2, 1)]


def test_resolved_exactly_at_the_sla_counts_as_kept(session: Session) -> None:
    customer = make_customer(session)
    make_complaint(session, customer, days_ago=3, resolved_at=ago(3) + timedelta(hours=24))
    complaints = report(session=session, period=PERIOD).complaints
    assert (complaints.resolved, complaints.resolved_within_sla, complaints.sla_share) == (1, 1, 1.0)


def test_handoffs_count_callbacks_and_the_median_wait(session: Session, world: World) -> None:
    handoffs = report(session=session, period=PERIOD).handoffs
    assert (handoffs.requested, handoffs.callbacks, handoffs.claimed) == (3, 1, 2)
    assert handoffs.median_minutes_to_claim == pytest.approx(18.0)


def test_an_empty_crm_reports_nothing_and_divides_by_nothing(session: Session) -> None:
    empty = report(session=session, period=PERIOD)
    assert empty.empty and empty.activity == 0
    assert empty.retention.overall.rate is None and empty.retention.by_reason == []
    assert (empty.satisfaction.average, empty.satisfaction.distribution) == (
        None,
        dict.fromkeys(range(1, 6), 0),
    )
    assert (empty.complaints.sla_share, empty.complaints.median_hours_to_resolve) == (None, None)
    assert empty.handoffs.median_minutes_to_claim is None
    assert {row.share for row in empty.loyalty.segments} == {None}
    assert dict(((s, g, f), v) for s, g, f, v in csv_rows(empty))[("retention", "all", "save rate")] == ""


def test_the_period_includes_its_first_moment_and_excludes_its_end(session: Session) -> None:
    customer = make_customer(session, created_at=OLD)
    for moment, score in ((PERIOD.start, 5), (PERIOD.start - timedelta(seconds=1), 1), (PERIOD.end, 1)):
        session.add(Survey(customer_id=customer.id, score=score, created_at=moment))
        attempt(session, customer, LeaveReason.PRICE, None, RetentionOutcome.ACCEPTED, moment)
        make_complaint(session, customer, created_at=moment)
    session.flush()
    figures = report(session=session, period=PERIOD)
    assert (figures.satisfaction.answers, figures.satisfaction.average) == (1, 5.0)
    assert figures.retention.attempts == 1
    assert figures.complaints.opened == 1


def test_a_shorter_period_sees_less(session: Session, world: World) -> None:
    week = report(session=session, period=last_days(7, now=NOW))
    assert week.period.start == NOW - timedelta(days=7)
    assert (week.retention.attempts, week.satisfaction.answers, week.complaints.opened) == (5, 3, 3)


@pytest.mark.parametrize(("raw", "days"), [(None, 30), ("", 30), ("7", 7), ("30", 30), ("90", 90)])
def test_periods_offered(raw: str | None, days: int) -> None:
    assert parse_days(raw) == days


@pytest.mark.parametrize("raw", ["14", "0", "-7", "abc", "7.5", "1e2", "<script>", "9" * 50])
def test_other_periods_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPeriod, match="choose a period of 7, 30 or 90 days"):
        parse_days(raw)
    with pytest.raises(InvalidPeriod):
        last_days(14, now=NOW)


def test_csv_rows_carry_the_same_figures(session: Session, world: World) -> None:
    rows = {(s, g, f): v for s, g, f, v in csv_rows(report(session=session, period=PERIOD))}
    assert rows[("retention", "all", "save rate")] == "0.5"
    assert rows[("retention by reason", "price", "save rate")] == "0.3333"
    assert rows[("satisfaction", "all", "average")] == "3"
    assert rows[("complaints", "all", "median hours to resolve")] == "30"
    assert rows[("loyalty", "MVC", "customers")] == "2"
    assert rows[("handoffs", "all", "callbacks")] == "1"


def test_offers_sharing_a_title_stay_apart(session: Session) -> None:
    customer = make_customer(session, created_at=OLD)
    for code, outcome in (("a", RetentionOutcome.ACCEPTED), ("b", RetentionOutcome.DECLINED)):
        row = offer(session, code, "Stay with us", OfferKind.VALUE_PITCH)
        attempt(session, customer, LeaveReason.PRICE, row, outcome, ago(1))
    session.flush()
    assert report(session=session, period=PERIOD).retention.by_offer == [
        SaveRow("Stay with us", 1, 1),
        SaveRow("Stay with us", 1, 0),
    ]
