"""The churn risk on hand-built histories: each factor moves the score the way it should, by the exact
weight docs/churn-risk.md gives; the signals are read from the CRM on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from statistics import mean

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.churn import (
    ChurnRules,
    Reason,
    Signals,
    add_months,
    collect_signals,
    next_renewal,
    refresh_all,
    refresh_customer,
    score,
)
from bot.crm.demo import DEMO_NOON, load_demo_data
from bot.crm.models import (
    Author,
    Channel,
    ComplaintStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    InboundStatus,
    Message,
    OrderStatus,
    OutreachKind,
    Product,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from bot.crm.record import customer_record
from tests.factories import NOW, make_complaint, make_customer, make_order


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# The mechanics are tested with the hand-set weights the score started with, so each factor shows; the
# shipped weights (tuned by `make churn-eval --tune`, some 0) are tested in tests/crm/test_churn_eval.py.
HAND = ChurnRules(
    overdue_from=1.5,
    overdue_full=4.0,
    overdue_weight=0.6,
    no_rhythm_from_days=90,
    no_rhythm_full_days=270,
    no_rhythm_weight=0.4,
    slowing_weight=0.2,
    late_complaint=0.2,
    low_rating=0.25,
    ignored_one=0.1,
    ignored_two=0.25,
    ignored_many=0.25,
    silent_from_days=120,
    silent_weight=0.15,
    new_weight=0.1,
    spend_weight=0.3,
    renewal_weight=0.1,
)


# A steady customer: joined long ago, orders every 20 days, the last one 10 days ago. Nothing is wrong.
STEADY = Signals(customer_id=1, joined_at=ago(400), order_times=(ago(50), ago(30), ago(10)))


def test_a_steady_customer_has_no_risk_and_no_reasons() -> None:
    assert score(STEADY, NOW, HAND).risk == 0.0
    assert score(STEADY, NOW, HAND).reasons == []


@pytest.mark.parametrize(
    ("change", "risk", "reason"),
    [
        # Overdue against their own rhythm: 60 days against every 20 is 3x; on time up to 1.5x, the
        # whole 0.6 from 4x: (3 - 1.5) / 2.5 * 0.6 = 0.36.
        (
            {"order_times": (ago(100), ago(80), ago(60))},
            0.36,
            Reason("overdue", 0.36, "no order for 60 days, usually every 20"),
        ),
        # Without a rhythm yet (one order): 180 days since, from 90 up to 270: 0.5 * 0.4.
        ({"order_times": (ago(180),)}, 0.2, Reason("no_recent_order", 0.2, "no order for 180 days")),
        # Slowing: four orders in the half-year before, one in the last; on time for their rhythm.
        (
            {"order_times": (ago(300), ago(270), ago(240), ago(210), ago(20))},
            0.15,
            Reason("slowing", 0.15, "1 order in the last 6 months, 4 in the 6 before"),
        ),
        # Spend falling: €180 in the half-year before, €40 in the last; as many orders (no slowing) and
        # on time (every 35 days by the median): 0.3 x 140/180 = 0.233.
        (
            {
                "order_times": (ago(250), ago(200), ago(50), ago(30), ago(10)),
                "order_totals": (90.0, 90.0, 20.0, 10.0, 10.0),
            },
            0.23,
            Reason("spend_falling", 0.23, "spent €40 in the last 6 months, €180 the 6 before"),
        ),
        # An active membership renewing in 9 days.
        (
            {"membership": SubscriptionStatus.ACTIVE, "next_renewal": NOW + timedelta(days=9)},
            0.1,
            Reason("renewal_coming", 0.1, "membership renews in 9 days"),
        ),
        (
            {"membership": SubscriptionStatus.CANCEL_REQUESTED},
            0.5,
            Reason("membership", 0.5, "membership cancellation requested"),
        ),
        ({"membership": SubscriptionStatus.PAUSED}, 0.25, Reason("membership", 0.25, "membership paused")),
        (
            {"membership": SubscriptionStatus.CANCELLED},
            0.35,
            Reason("membership", 0.35, "membership cancelled"),
        ),
        ({"open_complaints": 2}, 0.24, Reason("open_complaints", 0.24, "2 complaints open")),
        ({"open_complaints": 5}, 0.3, Reason("open_complaints", 0.3, "5 complaints open")),  # capped
        (
            {"recent_complaints": 2},
            0.1,
            Reason("recent_complaints", 0.1, "2 complaints in the last 90 days"),
        ),
        ({"last_rating": 2}, 0.25, Reason("low_rating", 0.25, "last rating 2/5")),
        ({"ignored_outreach": 1}, 0.1, Reason("ignored_outreach", 0.1, "1 message from us unanswered")),
        ({"ignored_outreach": 3}, 0.25, Reason("ignored_outreach", 0.25, "3 messages from us unanswered")),
        ({"last_inbound_at": ago(130)}, 0.15, Reason("silent", 0.15, "no message from them in 130 days")),
        (
            {"joined_at": ago(20), "order_times": (ago(10),)},
            0.1,
            Reason("new", 0.1, "joined 20 days ago, 1 order"),
        ),
    ],
)
def test_each_factor_raises_the_risk_by_its_weight(change: dict, risk: float, reason: Reason) -> None:  # type: ignore[type-arg]
    found = score(replace(STEADY, **change), NOW, HAND)
    assert found.risk == risk > score(STEADY, NOW, HAND).risk
    assert found.reasons == [reason]


@pytest.mark.parametrize(
    "change",
    [
        {"order_times": (ago(70), ago(50), ago(30))},  # 30 days against every 20: 1.5x, still on time
        {"last_rating": 3},  # a middling rating is not a warning
        {"last_inbound_at": ago(119)},  # wrote within the last 120 days
        {"joined_at": ago(20), "order_times": (ago(15), ago(5))},  # new, but already ordered twice
        {"membership": SubscriptionStatus.ACTIVE},
        {  # spent €100 against €180: more than half
            "order_times": (ago(250), ago(200), ago(50), ago(30), ago(10)),
            "order_totals": (90.0, 90.0, 40.0, 30.0, 30.0),
        },
        {  # €40 before is too little to fall from
            "order_times": (ago(250), ago(200), ago(50), ago(30), ago(10)),
            "order_totals": (20.0, 20.0, 5.0, 5.0, 5.0),
        },
        {"membership": SubscriptionStatus.ACTIVE, "next_renewal": NOW + timedelta(days=15)},  # not yet
    ],
)
def test_signs_short_of_their_threshold_add_nothing(change: dict) -> None:  # type: ignore[type-arg]
    assert score(replace(STEADY, **change), NOW, HAND).risk == 0.0


def test_signs_combine_as_a_noisy_or_strongest_reason_first() -> None:
    drifting = replace(
        STEADY,
        order_times=(ago(100), ago(80), ago(60)),
        last_rating=1,
        membership=SubscriptionStatus.CANCEL_REQUESTED,
        open_complaints=1,
        breached_complaints=1,
    )
    found = score(drifting, NOW, HAND)
    # 1 - (1-0.5)(1-0.36)(1-0.25)(1-0.2)(1-0.12) = 1 - 0.5*0.64*0.75*0.8*0.88 = 0.83104
    assert found.risk == 0.83
    assert [(r.factor, r.weight) for r in found.reasons] == [
        ("membership", 0.5),
        ("overdue", 0.36),
        ("low_rating", 0.25),
        ("breached_complaints", 0.2),
        ("open_complaints", 0.12),
    ]


def test_more_of_a_sign_never_lowers_the_risk() -> None:
    risks = [
        score(replace(STEADY, order_times=(ago(40 + d), ago(20 + d), ago(d))), NOW, HAND).risk
        for d in range(0, 120, 5)
    ]
    assert risks == sorted(risks) and risks[-1] == 0.6


# ----- from the CRM -----


def a_drifting_customer(session: Session) -> Customer:
    """Ordered every 20 days until 60 days ago, one case open past its promise, rated 2, ignored our
    last two messages (an older one was answered), last wrote 130 days ago, and asked to cancel."""
    customer = make_customer(session, created_at=ago(400))
    for days in (100, 80, 60):
        make_order(session, customer, days_ago=days)
    make_order(session, customer, days_ago=5, status=OrderStatus.CANCELLED)  # a cancelled order is no order
    make_complaint(session, customer, days_ago=3, status=ComplaintStatus.OPEN)  # due 2 days ago
    make_complaint(session, customer, days_ago=200, status=ComplaintStatus.CLOSED)  # long ago: not recent
    plan = Product(sku="PLAN-C", name="Coffee club", category="plan", price=Decimal("9.00"), is_plan=True)
    session.add(plan)
    session.flush()
    session.add_all(
        [
            Subscription(
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.CANCEL_REQUESTED,
                monthly_price=Decimal("9.00"),
                started_at=ago(300),
            ),
            Survey(customer_id=customer.id, score=5, created_at=ago(90)),
            Survey(customer_id=customer.id, score=2, created_at=ago(30)),
        ]
    )
    for n, (sent, replied) in enumerate(((40, 39), (20, None), (10, None), (1, None))):
        session.add(
            Delivery(
                idempotency_key=f"test:{customer.id}:{n}",
                kind=OutreachKind.CAMPAIGN,
                customer_id=customer.id,
                status=DeliveryStatus.SENT,
                sent_at=ago(sent),
                replied_at=ago(replied) if replied else None,
            )
        )  # the last one, a day old, has not had time to be ignored
    conversation = Conversation(
        sender_id=f"web:drift-{customer.id}", customer_id=customer.id, channel=Channel.WEB
    )
    session.add(conversation)
    session.flush()
    for days, direction, author in (
        (130, Direction.INBOUND, Author.CUSTOMER),
        (10, Direction.OUTBOUND, Author.BOT),
    ):
        session.add(
            Message(
                conversation_id=conversation.id,
                direction=direction,
                author=author,
                text="hello",
                delivery_status=InboundStatus.PROCESSED,
                created_at=ago(days),
            )
        )
    session.flush()
    return customer


def test_the_signals_are_read_from_the_crm(session: Session) -> None:
    customer = a_drifting_customer(session)
    [signals] = collect_signals(session=session, now=NOW, customer_ids=[customer.id])
    assert signals == Signals(
        customer_id=customer.id,
        joined_at=ago(400),
        order_times=(ago(100), ago(80), ago(60)),
        order_totals=(50.0, 50.0, 50.0),
        membership=SubscriptionStatus.CANCEL_REQUESTED,  # no renewal coming: only an active one renews
        open_complaints=1,
        breached_complaints=1,
        recent_complaints=0,
        last_rating=2,
        ignored_outreach=2,
        last_inbound_at=ago(130),  # our own message 10 days ago is not their contact
    )


def test_the_score_and_its_reasons_are_stored_on_the_customer(session: Session) -> None:
    drifting = a_drifting_customer(session)
    steady = make_customer(session, created_at=ago(400))
    for days in (50, 30, 10):
        make_order(session, steady, days_ago=days)

    assert refresh_all(session=session, now=NOW, rules=HAND) >= 2
    # 1 - 0.5 * 0.64 * 0.75 (ignored twice) * 0.75 (rated 2) * 0.8 * 0.85 (silent) * 0.88 = 0.892288
    assert drifting.churn_risk == 0.89 and drifting.churn_scored_at == NOW
    assert [r["factor"] for r in drifting.churn_reasons] == [
        "membership",
        "overdue",
        "ignored_outreach",
        "low_rating",
        "breached_complaints",
    ]  # the top five
    assert drifting.churn_reasons[1] == {
        "factor": "overdue",
        "weight": 0.36,
        "text": "no order for 60 days, usually every 20",
    }
    assert (steady.churn_risk, steady.churn_reasons) == (0.0, [])


def test_one_customer_is_rescored_alone(session: Session) -> None:
    one, other = make_customer(session, created_at=ago(400)), make_customer(session, created_at=ago(400))
    make_order(session, one, days_ago=180)
    found = refresh_customer(session=session, customer_id=one.id, now=NOW, rules=HAND)
    assert found is not None and found.risk == 0.2
    assert one.churn_risk == 0.2 and other.churn_scored_at is None


def test_the_record_shows_the_risk_with_its_reasons(session: Session) -> None:
    drifting = a_drifting_customer(session)
    unscored = make_customer(session)
    refresh_customer(session=session, customer_id=drifting.id, now=NOW, rules=HAND)

    record = customer_record(session=session, customer_id=drifting.id)
    assert record.churn_risk == "89%" and record.churn_scored
    assert [(row.title, row.detail) for row in record.churn_reasons][:2] == [
        ("membership cancellation requested", "weight 0.50"),
        ("no order for 60 days, usually every 20", "weight 0.36"),
    ]
    fresh = customer_record(session=session, customer_id=unscored.id)
    assert (fresh.churn_risk, fresh.churn_scored, fresh.churn_reasons) == ("not computed yet", False, [])


def test_the_demo_risks_come_from_behaviour(session: Session) -> None:
    load_demo_data(session=session, today=NOW.date(), customers=150)
    now = datetime.combine(NOW.date(), DEMO_NOON, tzinfo=timezone.utc)
    customers = session.scalars(select(Customer)).all()
    expected = {s.customer_id: score(s, now).risk for s in collect_signals(session=session, now=now)}
    assert {c.id: c.churn_risk for c in customers} == expected  # the same computation, nothing drawn
    by_profile: dict[str, list[float]] = {}
    for c in customers:
        by_profile.setdefault(c.tags[0], []).append(c.churn_risk)
    assert mean(by_profile["lapsed"]) > 2 * mean(by_profile["regular"])
    assert mean(by_profile["troubled"]) > mean(by_profile["loyal_big"])
    assert all(c.churn_reasons for c in customers if c.churn_risk > 0)


def test_a_complaint_that_ended_late_weighs_more_than_one_on_time() -> None:
    on_time = score(replace(STEADY, recent_complaints=1), NOW)
    late = score(replace(STEADY, recent_complaints=1, late_complaints=1), NOW)
    assert late.risk > on_time.risk > 0
    assert Reason("late_complaints", 0.4, "1 complaint resolved later than we promised") in late.reasons


def test_a_long_run_of_ignored_messages_weighs_more_than_two() -> None:
    two = score(replace(STEADY, ignored_outreach=2), NOW).risk
    many = score(replace(STEADY, ignored_outreach=5), NOW)
    assert many.risk > two > score(replace(STEADY, ignored_outreach=1), NOW).risk
    assert many.reasons == [Reason("ignored_outreach", 0.3, "5 messages from us unanswered")]


# ----- as of a moment in the past (the backtest): what happened later is invisible -----


def test_signals_as_of_a_past_moment_see_nothing_that_came_later(session: Session) -> None:
    customer = make_customer(session, created_at=ago(400))
    for days in (100, 80, 60):
        make_order(session, customer, days_ago=days)
    make_order(session, customer, days_ago=20, total="500.00")
    plan = Product(sku="PLAN-P", name="Coffee club", category="plan", price=Decimal("9.00"), is_plan=True)
    session.add(plan)
    session.flush()
    session.add_all(
        [
            Subscription(  # asked to cancel 10 days ago, cancelled since
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.CANCELLED,
                monthly_price=Decimal("9.00"),
                started_at=ago(300),
                cancel_requested_at=ago(10),
                cancelled_at=ago(2),
                renewed_at=datetime(2026, 5, 20, 12, tzinfo=timezone.utc),  # a day late, after the cut-off
            ),
            Survey(customer_id=customer.id, score=1, created_at=ago(5)),
        ]
    )
    # Filed 50 days ago, resolved 30 days ago (after its promise): open 40 days ago.
    make_complaint(session, customer, days_ago=50, resolved_at=ago(30))
    [then] = collect_signals(session=session, now=ago(40), customer_ids=[customer.id])
    assert then.order_times == (ago(100), ago(80), ago(60)) and then.order_totals == (50.0, 50.0, 50.0)
    assert then.membership is SubscriptionStatus.ACTIVE and then.last_rating is None
    # Started on 19 August 2025: monthly from then, the renewal on 20 May not yet seen on 6 May.
    assert ago(40) == datetime(2026, 5, 6, 12, tzinfo=timezone.utc)
    assert then.next_renewal == datetime(2026, 5, 19, 12, tzinfo=timezone.utc)
    assert (then.open_complaints, then.breached_complaints, then.recent_complaints) == (1, 1, 0)
    [later] = collect_signals(session=session, now=ago(6), customer_ids=[customer.id])
    assert later.membership is SubscriptionStatus.CANCEL_REQUESTED and later.next_renewal is None
    assert later.order_totals == (50.0, 50.0, 50.0, 500.0)
    assert (later.open_complaints, later.recent_complaints, later.late_complaints) == (0, 1, 1)
    [now] = collect_signals(session=session, now=NOW, customer_ids=[customer.id])
    assert now.membership is SubscriptionStatus.CANCELLED and now.last_rating == 1


def test_the_next_renewal_is_monthly_from_the_last_one_seen() -> None:
    jan31 = datetime(2026, 1, 31, 9, tzinfo=timezone.utc)
    assert add_months(jan31, 1) == datetime(2026, 2, 28, 9, tzinfo=timezone.utc)  # the month's last day
    assert add_months(jan31, 13) == datetime(2027, 2, 28, 9, tzinfo=timezone.utc)
    assert next_renewal(jan31, None, datetime(2026, 3, 1, tzinfo=timezone.utc)) == datetime(
        2026, 3, 31, 9, tzinfo=timezone.utc
    )
    renewed = datetime(2026, 5, 25, 9, tzinfo=timezone.utc)  # the shop renewed on another day
    assert next_renewal(jan31, renewed, NOW) == datetime(2026, 6, 25, 9, tzinfo=timezone.utc)
    assert next_renewal(jan31, renewed, renewed) == datetime(2026, 6, 25, 9, tzinfo=timezone.utc)


def test_an_active_membership_renewing_soon_is_read_from_the_crm(session: Session) -> None:
    customer = make_customer(session, created_at=ago(400))
    for days in (50, 30, 10):
        make_order(session, customer, days_ago=days)
    plan = Product(sku="PLAN-R", name="Coffee club", category="plan", price=Decimal("9.00"), is_plan=True)
    session.add(plan)
    session.flush()
    for started, renewed in ((datetime(2026, 1, 25, 12), datetime(2026, 5, 25, 12)), (ago(100), None)):
        session.add(
            Subscription(
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.ACTIVE,
                monthly_price=Decimal("9.00"),
                started_at=started.replace(tzinfo=timezone.utc),
                renewed_at=renewed.replace(tzinfo=timezone.utc) if renewed else None,
            )
        )
    session.flush()
    [signals] = collect_signals(session=session, now=NOW, customer_ids=[customer.id])
    # 25 June (10 days on) comes before the other's 7 July (100 days after 7 March, then monthly).
    assert signals.next_renewal == datetime(2026, 6, 25, 12, tzinfo=timezone.utc)
    assert score(signals, NOW, HAND).reasons == [
        Reason("renewal_coming", 0.1, "membership renews in 10 days")
    ]
