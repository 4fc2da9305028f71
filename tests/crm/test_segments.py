"""Segmentation rules at their boundaries, on pure stats and on constructed customers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from bot.crm.models import OrderStatus, RefundStatus, Segment
from bot.crm.segments import CustomerStats, assign_segments, classify, contribution, mvc_threshold
from tests.factories import NOW, make_complaint, make_customer, make_order, make_refund

D = Decimal
BASE = CustomerStats(customer_id=1)


def test_mvc_threshold_is_the_top_fifth_of_paying_customers() -> None:
    values = [D(v) for v in (1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0, 0)]
    assert mvc_threshold(values) == D(900)  # 10 paying customers: the top 2
    assert mvc_threshold([D(5)]) == D(5)
    assert mvc_threshold([D(0), D(-3)]) is None


def test_customers_tied_at_the_threshold_are_all_mvc() -> None:
    values = [D(100)] * 4 + [D(50)] * 6
    threshold = mvc_threshold(values)
    tied = [classify(replace(BASE, spend_12m=v), threshold, NOW) for v in values]
    assert tied.count(Segment.MVC) == 4


def test_mvc_includes_the_threshold_and_excludes_just_below() -> None:
    at = replace(BASE, spend_12m=D("900.00"))
    below = replace(BASE, spend_12m=D("899.99"))
    assert classify(at, D(900), NOW) is Segment.MVC
    assert classify(below, D(900), NOW) is Segment.STANDARD


def test_refunds_reduce_value_before_ranking() -> None:
    refunded = replace(BASE, spend_12m=D(1000), refunded_12m=D(200), refunds_12m=1)
    assert refunded.value_12m == D(800)
    assert classify(refunded, D(900), NOW) is Segment.STANDARD


@pytest.mark.parametrize(
    ("complaints", "refunds", "spend", "expected"),
    [
        (2, 0, D("166.66"), Segment.BZ),  # 0.3 * 166.66 = 49.998 < 50 of complaint cost
        (2, 0, D("166.67"), Segment.STANDARD),  # 50.001 > 50: still pays for itself
        (1, 0, D("0"), Segment.STANDARD),  # one incident is bad luck, not a pattern
        (1, 1, D("0"), Segment.BZ),
    ],
)
def test_below_zero_needs_negative_contribution_and_two_incidents(
    complaints: int, refunds: int, spend: Decimal, expected: Segment
) -> None:
    stats = replace(BASE, spend_12m=spend, complaints_12m=complaints, refunds_12m=refunds)
    assert classify(stats, D(10_000), NOW) is expected


def test_below_zero_wins_over_a_high_spend_threshold() -> None:
    stats = replace(BASE, spend_12m=D(100), complaints_12m=4)
    assert contribution(stats) < 0
    assert classify(stats, D(50), NOW) is Segment.BZ


@pytest.mark.parametrize(
    ("recent", "prior", "orders", "expected"),
    [
        (D(150), D(100), 3, Segment.MCC),  # exactly 1.5x
        (D("149.99"), D(100), 3, Segment.STANDARD),
        (D(300), D(100), 2, Segment.STANDARD),  # rising, but two orders are not a trend
        (D(300), D(0), 5, Segment.STANDARD),  # nothing before: young-and-frequent decides instead
    ],
)
def test_rising_spend_makes_mcc(recent: Decimal, prior: Decimal, orders: int, expected: Segment) -> None:
    stats = replace(
        BASE,
        spend_12m=recent + prior,
        spend_recent_6m=recent,
        spend_prior_6m=prior,
        orders_recent_6m=orders,
        first_order_at=NOW - timedelta(days=300),
    )
    assert classify(stats, D(10_000), NOW) is expected


@pytest.mark.parametrize(
    ("age_days", "orders_90d", "expected"),
    [(180, 3, Segment.MCC), (181, 3, Segment.STANDARD), (30, 2, Segment.STANDARD)],
)
def test_young_and_frequent_makes_mcc(age_days: int, orders_90d: int, expected: Segment) -> None:
    stats = replace(
        BASE, spend_12m=D(120), orders_90d=orders_90d, first_order_at=NOW - timedelta(days=age_days)
    )
    assert classify(stats, D(10_000), NOW) is expected


def test_segments_are_computed_from_orders_in_the_database(session: Session) -> None:
    whale = make_customer(session)
    for days in (20, 60, 100, 200, 300):
        make_order(session, whale, total="400.00", days_ago=days)
    make_order(session, whale, total="5000.00", days_ago=400)  # older than 12 months: does not count
    regulars = [make_customer(session) for _ in range(8)]
    for regular in regulars:
        make_order(session, regular, total="60.00", days_ago=250)
        make_order(session, regular, total="60.00", days_ago=30)
    newcomer = make_customer(session)
    for days in (80, 50, 20):
        make_order(session, newcomer, total="30.00", days_ago=days)
    troubled = make_customer(session)
    order = make_order(session, troubled, total="80.00", days_ago=90)
    make_refund(session, order, days_ago=80)
    make_complaint(session, troubled, days_ago=85)
    make_order(session, troubled, total="500.00", days_ago=2, status=OrderStatus.CANCELLED)
    rejected = make_order(session, regulars[0], total="10.00", days_ago=3)
    make_refund(session, rejected, status=RefundStatus.REJECTED)
    silent = make_customer(session)

    counts = assign_segments(session=session, now=NOW)

    # Ten paying customers (the troubled one's refund brings them to 0), so the top two are MVC:
    # the whale (2000 in 12 months; the 5000 order is too old) and regulars[0] (130: a rejected
    # refund does not reduce value).
    assert whale.segment is Segment.MVC
    assert regulars[0].segment is Segment.MVC
    assert {r.segment for r in regulars[1:]} == {Segment.STANDARD}
    assert troubled.segment is Segment.BZ
    assert newcomer.segment is Segment.MCC
    assert silent.segment is Segment.STANDARD
    assert counts == {Segment.MVC: 2, Segment.STANDARD: 8, Segment.BZ: 1, Segment.MCC: 1}
    assert whale.segment_updated_at == NOW
