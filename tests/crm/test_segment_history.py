"""Segments that follow the customer: every move kept once, a nightly run once a day, one customer
refreshed when their orders change, and reports reading the segment of the time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.api.schemas import OrderEvent, OrderIn
from bot.crm.ingest import upsert_order
from bot.crm.models import (
    LeaveReason,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    SegmentChange,
    SegmentRun,
)
from bot.crm.record import customer_record
from bot.crm.reports import last_days, leavers
from bot.crm.segments import refresh_all, refresh_customer, segments_at
from tests.factories import NOW, make_customer, make_order


def history(session: Session, customer_id: int) -> list[tuple[Segment | None, Segment, str, str, datetime]]:
    return [
        (c.from_segment, c.to_segment, c.rule, c.trigger, c.changed_at)
        for c in session.scalars(
            select(SegmentChange).where(SegmentChange.customer_id == customer_id).order_by(SegmentChange.id)
        )
    ]


def population(session: Session, *, at: datetime = NOW) -> None:
    """Nine customers who paid 60 each in the last year, so the top fifth (two) is at 60."""
    for _ in range(9):
        make_order(
            session, make_customer(session, created_at=at - timedelta(days=400)), total="60.00", days_ago=30
        )


def test_a_move_is_recorded_once_with_its_rule_and_trigger(session: Session) -> None:
    population(session)
    riser = make_customer(session, created_at=NOW - timedelta(days=400))
    make_order(session, riser, total="10.00", days_ago=200)

    refresh_all(session=session, now=NOW)
    make_order(session, riser, total="500.00", days_ago=0)
    refresh_all(session=session, now=NOW + timedelta(days=1))
    refresh_all(session=session, now=NOW + timedelta(days=2))  # nothing moved: nothing written

    assert history(session, riser.id) == [
        (None, Segment.STANDARD, "no_rule", "nightly", NOW),
        (Segment.STANDARD, Segment.MVC, "top_value", "nightly", NOW + timedelta(days=1)),
    ]
    session.refresh(riser)
    assert riser.segment is Segment.MVC and riser.segment_updated_at == NOW + timedelta(days=2)


def test_the_nightly_run_happens_once_a_day(session: Session) -> None:
    population(session)
    first = refresh_all(session=session, now=NOW)
    again = refresh_all(session=session, now=NOW + timedelta(hours=3))

    assert first is not None and again is None
    assert (first.customers, first.changed, first.mvc_threshold) == (9, 9, Decimal("60.00"))
    assert session.scalars(select(SegmentRun.day)).all() == [NOW.date()]
    assert session.query(SegmentChange).count() == 9  # each customer's first computation, once


def test_one_customer_is_refreshed_against_last_nights_threshold(session: Session) -> None:
    population(session)
    refresh_all(session=session, now=NOW)
    buyer = make_customer(session, created_at=NOW - timedelta(days=10))
    make_order(session, buyer, total="59.99", days_ago=1)
    assert refresh_customer(session=session, customer_id=buyer.id, now=NOW) is Segment.STANDARD
    make_order(session, buyer, total="0.01", days_ago=0)
    assert refresh_customer(session=session, customer_id=buyer.id, now=NOW) is Segment.MVC

    assert history(session, buyer.id) == [
        (None, Segment.STANDARD, "no_rule", "orders", NOW),
        (Segment.STANDARD, Segment.MVC, "top_value", "orders", NOW),
    ]
    others = session.scalars(select(SegmentChange.customer_id).where(SegmentChange.trigger == "orders")).all()
    assert set(others) == {buyer.id}  # nobody else was touched


def test_an_order_from_the_shop_refreshes_its_customers_segment_and_risk(session: Session) -> None:
    now = datetime.now(timezone.utc)
    population(session, at=now)
    refresh_all(session=session, now=now - timedelta(days=30))  # last night's threshold: 60
    buyer = make_customer(session, external_id="shop-7", created_at=now - timedelta(days=5))
    upsert_order(
        session=session,
        data=OrderIn(
            external_id="ord-7",
            occurred_at=now,
            status=OrderEvent.PLACED,
            customer_external_id="shop-7",
            number="CL-7007",
            total=Decimal("250.00"),
        ),
        actor="api:test",
    )

    session.refresh(buyer)
    assert buyer.segment is Segment.MVC
    assert buyer.churn_scored_at is not None  # and their churn risk with it
    assert [(was, to, trigger) for was, to, _, trigger, _ in history(session, buyer.id)] == [
        (None, Segment.MVC, "orders")
    ]


def test_segments_at_read_the_segment_of_the_time(session: Session) -> None:
    mover = make_customer(session)
    session.add_all(
        [
            SegmentChange(
                customer_id=mover.id,
                from_segment=None,
                to_segment=Segment.MCC,
                rule="rising_spend",
                trigger="nightly",
                changed_at=NOW - timedelta(days=100),
            ),
            SegmentChange(
                customer_id=mover.id,
                from_segment=Segment.MCC,
                to_segment=Segment.MVC,
                rule="top_value",
                trigger="nightly",
                changed_at=NOW - timedelta(days=50),
            ),
        ]
    )
    mover.segment = Segment.MVC
    unknown = make_customer(session, segment=Segment.BZ)  # no history: today's segment
    session.flush()

    found = segments_at(
        session=session,
        moments={mover.id: NOW - timedelta(days=60), unknown.id: NOW - timedelta(days=60)},
    )
    assert found == {mover.id: Segment.MCC, unknown.id: Segment.BZ}
    assert segments_at(session=session, moments={mover.id: NOW - timedelta(days=200)}) == {
        mover.id: Segment.MCC  # before the first computation: the first one known
    }
    assert segments_at(session=session, moments={mover.id: NOW - timedelta(days=50)}) == {
        mover.id: Segment.MVC
    }


def test_reports_count_a_leaver_in_the_segment_they_had_when_they_asked(session: Session) -> None:
    was_mvc = make_customer(session, segment=Segment.STANDARD, created_at=NOW - timedelta(days=400))
    session.add_all(
        [
            SegmentChange(
                customer_id=was_mvc.id,
                from_segment=None,
                to_segment=Segment.MVC,
                rule="top_value",
                trigger="nightly",
                changed_at=NOW - timedelta(days=90),
            ),
            SegmentChange(
                customer_id=was_mvc.id,
                from_segment=Segment.MVC,
                to_segment=Segment.STANDARD,
                rule="no_rule",
                trigger="nightly",
                changed_at=NOW - timedelta(days=3),
            ),
            RetentionAttempt(
                customer_id=was_mvc.id,
                reason=LeaveReason.PRICE,
                outcome=RetentionOutcome.PENDING,
                created_at=NOW - timedelta(days=10),
            ),
        ]
    )
    session.flush()

    [leaver] = leavers(session=session, period=last_days(30, now=NOW))
    assert leaver.segment is Segment.MVC  # today's segment would say standard


def test_the_record_says_since_when_and_what_before(session: Session) -> None:
    customer = make_customer(session, segment=Segment.MVC)
    session.add_all(
        [
            SegmentChange(
                customer_id=customer.id,
                from_segment=None,
                to_segment=Segment.MCC,
                rule="young_frequent",
                trigger="demo",
                changed_at=datetime(2026, 1, 2, 2, 30, tzinfo=timezone.utc),
            ),
            SegmentChange(
                customer_id=customer.id,
                from_segment=Segment.MCC,
                to_segment=Segment.MVC,
                rule="top_value",
                trigger="nightly",
                changed_at=datetime(2026, 3, 12, 2, 30, tzinfo=timezone.utc),
            ),
        ]
    )
    session.flush()
    quiet = make_customer(session)

    record = customer_record(session=session, customer_id=customer.id)
    assert record.segment_story == "since 12 March 2026; was MCC (in the top 20% by 12-month value)"
    assert customer_record(session=session, customer_id=quiet.id).segment_story == ""
