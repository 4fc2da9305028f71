"""The loyalty dashboard's figures (bot/crm/loyalty.py) on hand-built histories whose right answers are
known, on SQLite and PostgreSQL. "Now" is 15 June 2026 noon; three months are April, May and June."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from bot.crm import loyalty
from bot.crm.loyalty import Chart, Filters, InvalidFilter, Picker, parse_filters, window
from bot.crm.models import (
    Agent,
    Channel,
    ChannelIdentity,
    DriftEpisode,
    LeaveReason,
    Offer,
    OfferKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Role,
    Segment,
    SegmentChange,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from tests.factories import make_complaint, make_customer, make_order

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
LONG_AGO = datetime(2025, 1, 1, tzinfo=timezone.utc)


def at(month: int, day: int, hour: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=timezone.utc)


def series(chart: Chart) -> dict[str, tuple[float | None, ...]]:
    return {s.name: s.values for s in chart.series}


def run(session: Session, fn: object, months: int = 3, **filters: object) -> Chart:
    pick = Picker(session, Filters(months=months, **filters))  # type: ignore[arg-type]
    return fn(session, pick, window(months, now=NOW))  # type: ignore[operator, no-any-return]


def ordered(session: Session, customer: object, when: datetime, total: str = "50.00") -> None:
    make_order(session, customer, total=total, days_ago=(NOW - when).total_seconds() / 86400)  # type: ignore[arg-type]


def plan(session: Session) -> Product:
    product = Product(sku="PLAN-L", name="Plan", category="plan", price=Decimal("9.00"), is_plan=True)
    session.add(product)
    session.flush()
    return product


def test_filters_are_parsed_or_refused() -> None:
    assert parse_filters(None, None, None) == Filters(months=12)
    assert parse_filters("3", "MVC", "web") == Filters(months=3, segment=Segment.MVC, channel=Channel.WEB)
    for bad in (("5", "", ""), ("x", "", ""), ("3", "gold", ""), ("3", "", "fax")):
        with pytest.raises(InvalidFilter):
            parse_filters(*bad)
    assert window(3, now=NOW).months == ("2026-04", "2026-05", "2026-06")
    assert window(12, now=NOW).months[0] == "2025-07"


def test_lost_customers_by_month_in_the_segment_they_were_in_then(session: Session) -> None:
    # A: MVC until 1 June (standard today), asked to cancel on 10 May: lost in May, as MVC.
    a = make_customer(session, segment=Segment.STANDARD, created_at=LONG_AGO)
    session.add_all(
        [
            SegmentChange(
                customer_id=a.id,
                from_segment=None,
                to_segment=Segment.MVC,
                rule="r",
                trigger="t",
                changed_at=at(1, 1),
            ),
            SegmentChange(
                customer_id=a.id,
                from_segment=Segment.MVC,
                to_segment=Segment.STANDARD,
                rule="r",
                trigger="t",
                changed_at=at(6, 1),
            ),
            Subscription(
                customer_id=a.id,
                product_id=plan(session).id,
                status=SubscriptionStatus.CANCEL_REQUESTED,
                monthly_price=Decimal("9"),
                started_at=LONG_AGO,
                cancel_requested_at=at(5, 10),
            ),
        ]
    )
    ordered(session, a, at(6, 1))  # still buying: the cancellation is what counts
    b = make_customer(session, segment=Segment.STANDARD, created_at=LONG_AGO)
    ordered(session, b, at(3, 20))  # silent 60 days later: 19 May
    c = make_customer(session, segment=Segment.MVC, created_at=LONG_AGO)
    ordered(session, c, at(6, 10))  # active
    d = make_customer(session, segment=Segment.STANDARD, created_at=LONG_AGO)
    ordered(session, d, at(1, 1))  # silent since 2 March: before the period
    session.flush()

    chart = run(session, loyalty.lost_by_segment)
    assert chart.labels == ("2026-04", "2026-05", "2026-06")
    found = series(chart)
    assert found["most valuable (MVC) lost"] == (0, 1, 0)
    assert found["standard lost"] == (0, 1, 0)
    assert found["Target: zero churn"] == (0, 0, 0)
    assert chart.summary.startswith("2 customers lost in 3 months")
    # The segment filter reads the segment at the time: A is MVC then, standard today.
    only_mvc = series(run(session, loyalty.lost_by_segment, segment=Segment.MVC))
    assert list(only_mvc) == ["most valuable (MVC) lost", "Target: zero churn"]
    assert only_mvc["most valuable (MVC) lost"] == (0, 1, 0)
    # The channel filter: only B is on Telegram.
    session.add(ChannelIdentity(customer_id=b.id, channel=Channel.TELEGRAM, external_id="42"))
    session.flush()
    on_telegram = series(run(session, loyalty.lost_by_segment, channel=Channel.TELEGRAM))
    assert on_telegram["standard lost"] == (0, 1, 0) and on_telegram["most valuable (MVC) lost"] == (0, 0, 0)


def test_cohort_retention_counts_the_calendar_month_k_months_after_joining(session: Session) -> None:
    e = make_customer(session, created_at=at(4, 5))
    make_customer(session, created_at=at(4, 20))
    ordered(session, e, at(5, 3))
    ordered(session, e, at(4, 6))  # the joining month itself is not "after 1 month"
    make_customer(session, created_at=at(5, 2))  # May: its month after (June) has not ended
    chart = run(session, loyalty.cohort_retention)
    found = series(chart)
    assert found["after 1 month"] == (50.0, None, None)
    assert found["after 3 months"] == (None, None, None)
    assert "3 new customers" in chart.summary


def test_revenue_share_and_mvc_over_time(session: Session) -> None:
    a = make_customer(session, segment=Segment.STANDARD, created_at=LONG_AGO)
    session.add_all(
        [
            SegmentChange(
                customer_id=a.id,
                from_segment=None,
                to_segment=Segment.MVC,
                rule="r",
                trigger="t",
                changed_at=at(1, 1),
            ),
            SegmentChange(
                customer_id=a.id,
                from_segment=Segment.MVC,
                to_segment=Segment.STANDARD,
                rule="r",
                trigger="t",
                changed_at=at(6, 1),
            ),
        ]
    )
    c = make_customer(session, segment=Segment.MVC, created_at=LONG_AGO)  # no history: MVC all along
    e = make_customer(session, segment=Segment.STANDARD, created_at=LONG_AGO)
    make_customer(session, segment=Segment.BZ, created_at=LONG_AGO)
    ordered(session, a, at(6, 2), "100.00")
    ordered(session, c, at(6, 10), "300.00")
    ordered(
        session,
        c,
        at(5, 10),
        "50.00",
    )
    ordered(session, e, at(5, 3), "50.00")
    ordered(session, e, at(3, 3), "999.00")  # before the period
    share = series(run(session, loyalty.revenue_share))
    # Revenue 500: MVC (today) 350 = 70%, standard 150 = 30%; customers 4: MVC 1 = 25%.
    assert share["share of revenue"] == (70.0, 0.0, 30.0, 0.0)
    assert share["share of customers"] == (25.0, 0.0, 50.0, 25.0)
    mvc = series(run(session, loyalty.mvc_over_time))
    assert mvc["MVC customers (month end)"] == (2, 2, 1)  # A left MVC on 1 June
    assert mvc["revenue from MVC"] == (0, 50, 300)  # A's June order is not an MVC's
    moves = run(session, loyalty.segment_moves)
    assert series(moves) == {"most valuable (MVC) → standard": (0, 0, 1)}  # the first segment is no move


def test_save_rate_by_month_and_saves_that_lasted(session: Session) -> None:
    product = plan(session)
    offer = Offer(
        code="pause",
        title="Pause for a month",
        description="",
        kind=OfferKind.PAUSE,
        reason=LeaveReason.PRICE,
    )
    session.add(offer)
    session.flush()

    def attempt(customer: object, when: datetime, outcome: RetentionOutcome) -> None:
        session.add(
            RetentionAttempt(
                customer_id=customer.id,
                reason=LeaveReason.PRICE,
                offer_id=offer.id,  # type: ignore[attr-defined]
                outcome=outcome,
                created_at=when,
                decided_at=when,
            )
        )

    g = make_customer(session, created_at=LONG_AGO)
    attempt(g, at(5, 5), RetentionOutcome.ACCEPTED)
    h = make_customer(session, created_at=LONG_AGO)
    attempt(h, at(5, 5), RetentionOutcome.DECLINED)
    session.add(
        Subscription(
            customer_id=h.id,
            product_id=product.id,
            status=SubscriptionStatus.CANCEL_REQUESTED,
            monthly_price=Decimal("9"),
            started_at=LONG_AGO,
            cancel_requested_at=at(5, 6),
        )
    )
    k = make_customer(session, created_at=LONG_AGO)  # saved in January, ordered in March: lasted
    attempt(k, at(1, 10), RetentionOutcome.ACCEPTED)
    ordered(session, k, at(3, 1))
    m = make_customer(session, created_at=LONG_AGO)  # saved in February, cancelled in March: did not
    attempt(m, at(2, 1), RetentionOutcome.ACCEPTED)
    ordered(session, m, at(4, 1))
    session.add(
        Subscription(
            customer_id=m.id,
            product_id=product.id,
            status=SubscriptionStatus.CANCELLED,
            monthly_price=Decimal("9"),
            started_at=LONG_AGO,
            cancelled_at=at(3, 1),
        )
    )
    session.flush()

    rate = series(run(session, loyalty.save_rate_by_month))
    assert rate["save rate"] == (None, 50.0, None)
    assert rate["asked to leave"] == (0, 2, 0)
    offers = series(run(session, loyalty.saves_by_offer))
    assert offers == {"accepted": (1,), "declined": (1,), "no answer yet": (0,)}
    lasting = run(session, loyalty.lasting_saves, months=6)
    assert lasting.labels[0] == "2026-01"
    found = series(lasting)
    assert found["still active 90 days on"] == (1, 0, 0, 0, 0, 0)
    assert found["not active 90 days on"] == (0, 1, 0, 0, 0, 0)
    assert found["too recent to tell"] == (0, 0, 0, 0, 1, 0)
    assert "Of 2 saves at least 90 days old, 1 were still active" in lasting.summary


def test_win_back_rate_of_the_drift_episodes_that_ended(session: Session) -> None:
    for n, outcome in enumerate(("came_back", "lapsed", None)):
        customer = make_customer(session, created_at=LONG_AGO)
        session.add(
            DriftEpisode(
                key=f"drift:{n}",
                customer_id=customer.id,
                segment=Segment.STANDARD,
                reason="quiet",
                last_active_at=at(3, 1),
                started_at=at(5, 1 + n),
                action="checkin",
                outcome=outcome,
            )
        )
    session.flush()
    found = series(run(session, loyalty.win_back))
    assert found["win-back rate"] == (None, 50.0, None)
    assert found["began drifting"] == (0, 3, 0)


def test_csat_trend_and_repeat_purchase_by_latest_rating(session: Session) -> None:
    p, q, r, s = (make_customer(session, created_at=LONG_AGO) for _ in range(4))
    session.add_all(
        [
            Survey(customer_id=p.id, score=5, created_at=at(4, 1)),
            Survey(customer_id=q.id, score=5, created_at=at(4, 2)),
            Survey(customer_id=r.id, score=2, created_at=at(4, 1)),
            Survey(customer_id=r.id, score=4, created_at=at(4, 3)),  # R's latest
            Survey(customer_id=s.id, score=3, created_at=at(6, 1)),  # too recent to judge
            Survey(customer_id=s.id, score=None, comment="no score", created_at=at(6, 2)),
        ]
    )
    ordered(session, p, at(4, 20))  # 19 days after: a repeat
    ordered(session, q, at(3, 1))  # before the rating: not a repeat
    ordered(session, r, at(5, 1))  # 28 days after R's latest
    session.flush()
    csat = series(run(session, loyalty.csat_by_month))
    assert csat["average rating"] == (4.0, None, 3.0)
    assert csat["ratings"] == (4, 0, 1)
    repeat = series(run(session, loyalty.repeat_by_rating))
    assert repeat["ordered again within 60 days"] == (50.0, 100.0, None)
    assert repeat["customers"] == (2, 1, 0)


def test_service_sla_team_times_and_csat_per_agent(session: Session) -> None:
    alex = Agent(username="alexl", display_name="Alex", role=Role.AGENT, password_hash="x")
    session.add(alex)
    session.flush()
    customer = make_customer(session, created_at=LONG_AGO)
    filed = at(5, 1, 10)
    kept = make_complaint(
        session,
        customer,
        days_ago=(NOW - filed).total_seconds() / 86400,
        team="logistics",
        first_response_at=filed + timedelta(hours=2),
        resolved_at=filed + timedelta(hours=10),
        owner_id=alex.id,
    )
    make_complaint(
        session,
        customer,
        days_ago=(NOW - filed).total_seconds() / 86400,
        team="billing",
        first_response_at=filed + timedelta(hours=1),
        resolved_at=filed + timedelta(hours=30),
    )
    session.add_all(
        [
            Survey(customer_id=customer.id, complaint_id=kept.id, score=4, created_at=at(5, 3)),
            Survey(customer_id=customer.id, complaint_id=kept.id, score=2, created_at=at(5, 4)),
        ]
    )
    session.flush()
    sla = series(run(session, loyalty.sla_by_month))
    assert sla["SLA met"] == (None, 50.0, None)
    assert sla["cases resolved"] == (0, 2, 0)
    times = run(session, loyalty.times_by_team)
    assert times.labels == ("billing", "logistics")
    assert series(times) == {"first response (median h)": (1.0, 2.0), "resolution (median h)": (30.0, 10.0)}
    agents = run(session, loyalty.csat_by_agent)
    assert agents.labels == ("Alex",)
    assert series(agents) == {"average rating": (3.0,), "ratings": (2,)}


def test_the_dashboard_has_every_chart_and_agents_only_for_admins(session: Session) -> None:
    board = loyalty.dashboard(session=session, filters=Filters(months=6), now=NOW)
    keys = [c.key for _, charts in board.sections for c in charts]
    assert "csat-agents" not in keys and len(keys) == len(set(keys)) == 14
    assert board.empty
    admin = loyalty.dashboard(session=session, filters=Filters(months=6), now=NOW, with_agents=True)
    assert admin.chart("csat-agents") is not None
    assert "not asked yet" in board.nps_note
