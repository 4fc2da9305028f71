"""Automatic check-ins: who is queued a delivery, when, under which key, and only once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from bot.crm.complaints import plan_followup
from bot.crm.drift import SILENCE_DAYS
from bot.crm.models import (
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    DriftEpisode,
    OrderStatus,
    OutreachKind,
    Product,
    Segment,
    Subscription,
    SubscriptionStatus,
)
from bot.crm.retention import WIN_BACK_AFTER, record_cancellation
from scheduler.checkins import (
    complaint_followups,
    delivery_checks,
    drift,
    enqueue,
    greetings,
    parse_holidays,
    sweep,
)
from tests.factories import NOW, make_complaint, make_customer, make_order

UTC = timezone.utc
HOLIDAYS = parse_holidays(("12-25 Christmas", "01-01 New Year"))


def deliveries(session: Session, kind: OutreachKind) -> list[Delivery]:
    """What the sweep left in the CRM, read back from the database rather than the identity map."""
    session.flush()
    session.expire_all()
    return list(session.scalars(select(Delivery).where(Delivery.kind == kind).order_by(Delivery.id)))


def by_customer(session: Session, kind: OutreachKind) -> dict[int, Delivery]:
    rows = deliveries(session, kind)
    assert len({d.customer_id for d in rows}) == len(rows), "one delivery per customer and occasion"
    return {d.customer_id: d for d in rows}


def engaged(session: Session, **fields: Any) -> Customer:
    """A customer who once bought something."""
    customer = make_customer(session, **fields)
    make_order(session, customer, days_ago=400)
    return customer


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """Collect the SQL statements the session sends while the block runs."""
    seen: list[str] = []
    connection = session.connection()

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


@contextmanager
def customers_loaded() -> Iterator[list[int]]:
    """Collect the ids of the Customer rows loaded as whole objects while the block runs."""
    seen: list[int] = []

    def record(customer: Customer, _context: Any) -> None:
        seen.append(customer.id)

    event.listen(Customer, "load", record)
    try:
        yield seen
    finally:
        event.remove(Customer, "load", record)


# Complaint revisits ---------------------------------------------------------------------------


def test_a_resolved_case_is_revisited_once_when_due(session: Session) -> None:
    customer = make_customer(session)
    due = NOW - timedelta(hours=1)
    complaint = make_complaint(session, customer, status=ComplaintStatus.RESOLVED, followup_due_at=due)

    assert complaint_followups(session=session, now=NOW) == 1
    assert complaint_followups(session=session, now=NOW + timedelta(hours=2)) == 0

    (revisit,) = deliveries(session, OutreachKind.COMPLAINT_FOLLOWUP)
    assert revisit.idempotency_key == f"complaint_followup:complaint:{complaint.id}"
    assert (revisit.customer_id, revisit.complaint_id, revisit.status) == (
        customer.id,
        complaint.id,
        DeliveryStatus.QUEUED,
    )
    assert revisit.payload == {"complaint_id": str(complaint.id)}
    assert revisit.scheduled_for == due


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"status": ComplaintStatus.RESOLVED, "followup_due_at": NOW + timedelta(hours=1)}, id="not-due"
        ),
        pytest.param(
            {"status": ComplaintStatus.IN_PROGRESS, "followup_due_at": NOW - timedelta(days=1)}, id="open"
        ),
        pytest.param(
            {"status": ComplaintStatus.REOPENED, "followup_due_at": NOW - timedelta(days=1)}, id="reopened"
        ),
        pytest.param(
            {"status": ComplaintStatus.CLOSED, "followup_due_at": NOW - timedelta(days=1)}, id="closed"
        ),
        pytest.param(
            {
                "status": ComplaintStatus.RESOLVED,
                "followup_due_at": NOW - timedelta(days=1),
                "followup_done_at": NOW - timedelta(hours=3),
            },
            id="already-revisited",
        ),
        pytest.param({"status": ComplaintStatus.RESOLVED, "followup_due_at": None}, id="no-revisit-planned"),
    ],
)
def test_no_revisit_before_the_case_is_resolved_and_due_or_after_it_was_done(
    session: Session, fields: dict[str, Any]
) -> None:
    make_complaint(session, make_customer(session), **fields)

    assert complaint_followups(session=session, now=NOW) == 0
    assert deliveries(session, OutreachKind.COMPLAINT_FOLLOWUP) == []


def test_a_revisit_planned_at_filing_is_not_duplicated_and_learns_its_case(session: Session) -> None:
    customer = make_customer(session)
    complaint = make_complaint(session, customer, status=ComplaintStatus.RESOLVED)
    plan_followup(session=session, complaint=complaint, due=NOW - timedelta(minutes=5))
    assert deliveries(session, OutreachKind.COMPLAINT_FOLLOWUP)[0].payload == {}

    assert complaint_followups(session=session, now=NOW) == 0

    (revisit,) = deliveries(session, OutreachKind.COMPLAINT_FOLLOWUP)
    assert revisit.payload == {"complaint_id": str(complaint.id)}


# Delivery checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delivered_ago", "checked"),
    [
        (timedelta(days=2), True),
        (timedelta(days=2, hours=12), True),
        (timedelta(days=3), True),  # e.g. the scheduler was down for a day
        (timedelta(days=5) - timedelta(minutes=1), True),
        (timedelta(days=2) - timedelta(minutes=1), False),  # not yet two days
        (timedelta(days=1), False),
        (timedelta(days=5), False),  # too late: the question would come out of nowhere
        (timedelta(days=30), False),
    ],
)
def test_a_delivery_check_two_to_five_days_after_arrival(
    session: Session, delivered_ago: timedelta, checked: bool
) -> None:
    customer = make_customer(session)
    order = make_order(session, customer, delivered_at=NOW - delivered_ago)

    assert delivery_checks(session=session, now=NOW) == int(checked)

    rows = deliveries(session, OutreachKind.DELIVERY_CHECK)
    if not checked:
        assert rows == []
        return
    (check,) = rows
    assert check.idempotency_key == f"delivery_check:order:{order.id}"
    assert (check.customer_id, check.payload, check.scheduled_for) == (
        customer.id,
        {"order_id": order.number},
        NOW,
    )


def test_an_order_is_checked_once_across_sweeps(session: Session) -> None:
    make_order(session, make_customer(session), delivered_at=NOW - timedelta(days=2, hours=1))

    assert delivery_checks(session=session, now=NOW) == 1
    assert delivery_checks(session=session, now=NOW + timedelta(minutes=1)) == 0
    assert delivery_checks(session=session, now=NOW + timedelta(hours=20)) == 0
    assert len(deliveries(session, OutreachKind.DELIVERY_CHECK)) == 1


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.RETURNED, OrderStatus.CANCELLED])
def test_orders_that_are_not_delivered_are_not_checked(session: Session, status: OrderStatus) -> None:
    make_order(session, make_customer(session), status=status, delivered_at=NOW - timedelta(days=2, hours=6))

    assert delivery_checks(session=session, now=NOW) == 0
    assert deliveries(session, OutreachKind.DELIVERY_CHECK) == []


# Silences: the check-in for drifting customers (tests/scheduler/test_drift.py has the rest) ------


def drift_episodes(session: Session) -> dict[int, DriftEpisode]:
    session.flush()
    return {e.customer_id: e for e in session.scalars(select(DriftEpisode))}


def test_quiet_customers_drift_by_segment_threshold_and_only_standard_ones_hear_from_the_bot(
    session: Session,
) -> None:
    expected = set()
    not_expected = set()
    for segment, days in SILENCE_DAYS.items():
        just_quiet = engaged(session, segment=segment, last_contact_at=NOW - timedelta(days=days, hours=1))
        nearly_twice = engaged(session, segment=segment, last_contact_at=NOW - timedelta(days=2 * days - 1))
        expected |= {just_quiet.id, nearly_twice.id}
        not_yet = engaged(session, segment=segment, last_contact_at=NOW - timedelta(days=days - 1))
        long_gone = engaged(session, segment=segment, last_contact_at=NOW - timedelta(days=2 * days + 1))
        not_expected |= {not_yet.id, long_gone.id}

    counts = drift(session=session, now=NOW)

    episodes = drift_episodes(session)
    assert set(episodes) == expected
    segment_of = {c.id: c.segment for c in session.scalars(select(Customer))}
    standard = {cid for cid in expected if segment_of[cid] is Segment.STANDARD}
    assert counts["drift_checkin"] == len(standard) == 2
    queued = by_customer(session, OutreachKind.SILENCE)
    assert set(queued) == standard
    last_contact = {c.id: c.last_contact_at for c in session.scalars(select(Customer))}
    for customer_id, delivery in queued.items():
        since = f"{last_contact[customer_id]:%Y-%m-%d}"
        assert delivery.idempotency_key == f"silence:customer:{customer_id}:since:{since}"
        assert delivery.scheduled_for == NOW
        assert delivery.payload == {"drift_reason": "lapsed_buyer"}
    for customer_id, episode in episodes.items():
        wanted = {Segment.MVC: "task", Segment.MCC: "task", Segment.BZ: "not_chased"}
        assert episode.action == wanted.get(segment_of[customer_id], "checkin")


def test_the_thresholds_differ_by_segment(session: Session) -> None:
    quiet_25_days = NOW - timedelta(days=25)
    mcc = engaged(session, segment=Segment.MCC, last_contact_at=quiet_25_days)
    engaged(session, segment=Segment.MVC, last_contact_at=quiet_25_days)
    engaged(session, segment=Segment.STANDARD, last_contact_at=quiet_25_days)

    assert drift(session=session, now=NOW)["drift_task"] == 1
    assert set(drift_episodes(session)) == {mcc.id}


def test_only_customers_who_engaged_and_were_not_erased_drift(session: Session) -> None:
    quiet = NOW - timedelta(days=SILENCE_DAYS[Segment.STANDARD] + 5)
    bought = engaged(session, segment=Segment.STANDARD, last_contact_at=quiet)
    engaged(session, segment=Segment.STANDARD, last_contact_at=quiet, erased_at=NOW - timedelta(days=1))
    make_customer(session, segment=Segment.STANDARD, last_contact_at=None)  # never bought nor wrote

    assert drift(session=session, now=NOW)["drift_checkin"] == 1
    assert set(by_customer(session, OutreachKind.SILENCE)) == {bought.id}


def test_a_silence_is_checked_in_on_once_per_quiet_spell(session: Session) -> None:
    customer = engaged(session, segment=Segment.STANDARD, last_contact_at=NOW - timedelta(days=61))

    assert drift(session=session, now=NOW)["drift_checkin"] == 1
    assert drift(session=session, now=NOW + timedelta(minutes=1))["drift_checkin"] == 0
    assert drift(session=session, now=NOW + timedelta(days=20))["drift_checkin"] == 0  # same spell
    assert drift(session=session, now=NOW + timedelta(days=45))["drift_checkin"] == 0
    assert len(deliveries(session, OutreachKind.SILENCE)) == 1

    customer.last_contact_at = NOW + timedelta(days=50)  # they wrote back, then went quiet again
    session.flush()
    assert drift(session=session, now=NOW + timedelta(days=50 + 61))["drift_checkin"] == 1
    assert len(deliveries(session, OutreachKind.SILENCE)) == 2


# Greetings ------------------------------------------------------------------------------------

# 2026-06-14 13:00 UTC is already 15 June 01:00 in Auckland (NZST, +12) and still 14 June 06:00
# in Los Angeles (PDT, -7).
MID_JUNE = datetime(2026, 6, 14, 13, 0, tzinfo=UTC)


def test_birthdays_are_greeted_at_ten_on_the_local_day(session: Session) -> None:
    auckland = make_customer(session, timezone="Pacific/Auckland", birthday=date(1990, 6, 15))
    los_angeles = make_customer(session, timezone="America/Los_Angeles", birthday=date(1985, 6, 14))
    in_utc = make_customer(session, birthday=date(2000, 6, 14))
    # Their birthdays are on the UTC date or the day after, but not on their own local date.
    make_customer(session, timezone="Pacific/Auckland", birthday=date(1990, 6, 14))
    make_customer(session, timezone="America/Los_Angeles", birthday=date(1985, 6, 15))
    make_customer(session, birthday=date(2000, 6, 15))
    make_customer(session, birthday=date(2000, 6, 13))
    make_customer(session, birthday=None)
    make_customer(session, birthday=date(1990, 6, 14), erased_at=NOW - timedelta(days=30))

    assert greetings(session=session, now=MID_JUNE, holidays={}) == 3

    queued = by_customer(session, OutreachKind.BIRTHDAY)
    assert set(queued) == {auckland.id, los_angeles.id, in_utc.id}
    assert {cid: d.idempotency_key for cid, d in queued.items()} == {
        cid: f"birthday:customer:{cid}:2026" for cid in queued
    }
    scheduled = {cid: d.scheduled_for for cid, d in queued.items()}
    assert scheduled == {
        auckland.id: datetime(2026, 6, 14, 22, 0, tzinfo=UTC),  # 15 June 10:00 NZST
        los_angeles.id: datetime(2026, 6, 14, 17, 0, tzinfo=UTC),  # 14 June 10:00 PDT
        in_utc.id: datetime(2026, 6, 14, 10, 0, tzinfo=UTC),
    }
    assert all(moment.utcoffset() == timedelta(0) for moment in scheduled.values())
    assert all(d.payload == {} for d in queued.values())


def test_a_birthday_is_greeted_once(session: Session) -> None:
    customer = make_customer(session, timezone="Pacific/Auckland", birthday=date(1990, 6, 15))

    assert greetings(session=session, now=MID_JUNE, holidays={}) == 1
    # Later that same local day, and once it is 15 June in UTC as well.
    assert greetings(session=session, now=MID_JUNE + timedelta(hours=1), holidays={}) == 0
    assert greetings(session=session, now=MID_JUNE + timedelta(hours=10), holidays={}) == 0

    assert set(by_customer(session, OutreachKind.BIRTHDAY)) == {customer.id}


def test_a_birthday_comes_again_next_year(session: Session) -> None:
    customer = make_customer(session, birthday=date(1990, 6, 14))

    assert greetings(session=session, now=MID_JUNE, holidays={}) == 1
    assert greetings(session=session, now=MID_JUNE.replace(year=2027), holidays={}) == 1

    keys = {d.idempotency_key for d in deliveries(session, OutreachKind.BIRTHDAY)}
    assert keys == {f"birthday:customer:{customer.id}:2026", f"birthday:customer:{customer.id}:2027"}


def test_a_holiday_is_greeted_on_each_customers_own_date(session: Session) -> None:
    auckland = make_customer(session, timezone="Pacific/Auckland")
    los_angeles = make_customer(session, timezone="America/Los_Angeles")
    berlin = make_customer(session, timezone="Europe/Berlin")
    make_customer(session, timezone="Pacific/Auckland", erased_at=NOW)
    christmas_eve = datetime(2026, 12, 24, 12, 0, tzinfo=UTC)  # 25 December 01:00 in Auckland (NZDT, +13)

    assert greetings(session=session, now=christmas_eve, holidays=HOLIDAYS) == 1
    assert greetings(session=session, now=christmas_eve + timedelta(minutes=1), holidays=HOLIDAYS) == 0
    assert set(by_customer(session, OutreachKind.HOLIDAY)) == {auckland.id}

    christmas_day = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)  # Auckland is at 26 December by now
    assert greetings(session=session, now=christmas_day, holidays=HOLIDAYS) == 2

    queued = by_customer(session, OutreachKind.HOLIDAY)
    assert set(queued) == {auckland.id, los_angeles.id, berlin.id}
    assert {cid: d.idempotency_key for cid, d in queued.items()} == {
        cid: f"holiday:12-25:customer:{cid}:2026" for cid in queued
    }
    assert all(d.payload == {"holiday_name": "Christmas"} for d in queued.values())
    assert {cid: d.scheduled_for for cid, d in queued.items()} == {
        auckland.id: datetime(2026, 12, 24, 21, 0, tzinfo=UTC),  # 10:00 NZDT
        los_angeles.id: datetime(2026, 12, 25, 18, 0, tzinfo=UTC),  # 10:00 PST
        berlin.id: datetime(2026, 12, 25, 9, 0, tzinfo=UTC),  # 10:00 CET
    }


def test_new_year_takes_the_year_of_the_customers_own_date(session: Session) -> None:
    auckland = make_customer(session, timezone="Pacific/Auckland")
    make_customer(session, timezone="Europe/Berlin")
    new_years_eve = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)  # 1 January 2027 01:00 in Auckland

    assert greetings(session=session, now=new_years_eve, holidays=HOLIDAYS) == 1

    (greeting,) = deliveries(session, OutreachKind.HOLIDAY)
    assert greeting.idempotency_key == f"holiday:01-01:customer:{auckland.id}:2027"
    assert greeting.payload == {"holiday_name": "New Year"}
    assert greeting.scheduled_for == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)


def test_a_birthday_on_a_holiday_gets_both_greetings(session: Session) -> None:
    customer = make_customer(session, timezone="Europe/Berlin", birthday=date(1970, 12, 25))

    assert greetings(session=session, now=datetime(2026, 12, 25, 8, 0, tzinfo=UTC), holidays=HOLIDAYS) == 2

    kinds = {
        d.kind for d in deliveries(session, OutreachKind.BIRTHDAY) + deliveries(session, OutreachKind.HOLIDAY)
    }
    assert kinds == {OutreachKind.BIRTHDAY, OutreachKind.HOLIDAY}
    assert all(d.customer_id == customer.id for d in session.scalars(select(Delivery)))


def test_no_greetings_on_an_ordinary_day(session: Session) -> None:
    make_customer(session, timezone="Pacific/Auckland", birthday=date(1990, 3, 1))
    make_customer(session, timezone="America/Los_Angeles")

    assert greetings(session=session, now=MID_JUNE, holidays=HOLIDAYS) == 0
    assert session.scalars(select(Delivery)).all() == []


def test_greetings_do_not_look_at_every_customer_one_by_one(session: Session) -> None:
    zones = ("Pacific/Auckland", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "UTC")
    for n in range(40):  # birthdays from January to November
        make_customer(session, timezone=zones[n % len(zones)], birthday=date(1980, 1 + n % 11, 1 + n % 28))
    birthday_child = make_customer(session, timezone="Asia/Tokyo", birthday=date(1980, 6, 14))
    christmas_day = datetime(2026, 12, 25, 9, 0, tzinfo=UTC)  # 25 December in every one of those zones
    assert greetings(session=session, now=christmas_day, holidays=HOLIDAYS) == 41
    session.flush()
    session.expunge_all()

    with statements(session) as ordinary_day, customers_loaded() as loaded_on_ordinary_day:
        assert greetings(session=session, now=MID_JUNE, holidays=HOLIDAYS) == 1
    with statements(session) as holiday_again, customers_loaded() as loaded_on_holiday:
        assert greetings(session=session, now=christmas_day + timedelta(minutes=1), holidays=HOLIDAYS) == 0

    # Near a birthday only that customer is read; near no holiday nobody else is.
    assert loaded_on_ordinary_day == [birthday_child.id]
    assert len([sql for sql in ordinary_day if sql.lstrip().upper().startswith("SELECT")]) <= 2
    # A holiday walks everyone, in a fixed number of queries rather than one per customer.
    assert len(holiday_again) <= 3
    assert loaded_on_holiday == []


def test_holiday_calendar_entries() -> None:
    assert parse_holidays(("12-25 Christmas", " 1-1  New Year ", "07-14", "02-29 Leap day")) == {
        "12-25": "Christmas",
        "01-01": "New Year",
        "07-14": "the holidays",
        "02-29": "Leap day",
    }


@pytest.mark.parametrize(
    "entry", ["25-12 Christmas", "12/25 Christmas", "2026-12-25 Christmas", "Christmas", "", "02-30 Nope"]
)
def test_a_malformed_holiday_entry_is_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_holidays((entry,))


def test_a_key_queued_by_another_process_after_the_bulk_read_is_not_queued_twice(session: Session) -> None:
    customer = make_customer(session)
    key = f"holiday:12-25:customer:{customer.id}:2026"
    stale_read: set[str] = set()  # read before the other process queued the key
    assert enqueue(
        session=session, key=key, kind=OutreachKind.HOLIDAY, customer_id=customer.id, scheduled_for=NOW
    )

    again = enqueue(
        session=session,
        key=key,
        kind=OutreachKind.HOLIDAY,
        customer_id=customer.id,
        scheduled_for=NOW,
        existing=stale_read,
    )

    assert again is False
    assert [d.idempotency_key for d in deliveries(session, OutreachKind.HOLIDAY)] == [key]


# The whole sweep ------------------------------------------------------------------------------


def test_a_second_sweep_queues_nothing_new(session: Session) -> None:
    customer = engaged(
        session, segment=Segment.MVC, last_contact_at=NOW - timedelta(days=31), birthday=date(1990, 6, 15)
    )
    make_complaint(
        session, customer, status=ComplaintStatus.RESOLVED, followup_due_at=NOW - timedelta(days=1)
    )
    make_order(session, customer, delivered_at=NOW - timedelta(days=2, hours=2))
    holidays = parse_holidays(("06-15 Midsummer test",))

    first = sweep(session=session, now=NOW, holidays=holidays)
    second = sweep(session=session, now=NOW + timedelta(minutes=1), holidays=holidays)

    assert first == {"complaint_followup": 1, "delivery_check": 1, "greetings": 2}
    assert second == {"complaint_followup": 0, "delivery_check": 0, "greetings": 0}
    assert len(session.scalars(select(Delivery)).all()) == 4


# The win-back after a cancellation ------------------------------------------------------------


def test_a_cancellation_plans_one_win_back_six_weeks_later(session: Session) -> None:
    customer = make_customer(session)
    plan = Product(sku="PLAN-TEST", name="Test plan", category="plans", price=Decimal("9.00"), is_plan=True)
    session.add(plan)
    session.flush()
    subscription = Subscription(
        customer_id=customer.id,
        product_id=plan.id,
        status=SubscriptionStatus.ACTIVE,
        monthly_price=plan.price,
        started_at=NOW - timedelta(days=200),
    )
    session.add(subscription)
    session.flush()

    first = record_cancellation(session=session, customer=customer, conversation=None, now=NOW)
    again = record_cancellation(
        session=session, customer=customer, conversation=None, now=NOW + timedelta(hours=2)
    )

    assert again.id == first.id
    (win_back,) = deliveries(session, OutreachKind.WIN_BACK)
    assert win_back.idempotency_key == f"win_back:customer:{customer.id}:2026-06-15"
    assert (win_back.customer_id, win_back.status) == (customer.id, DeliveryStatus.QUEUED)
    assert win_back.scheduled_for == NOW + WIN_BACK_AFTER == datetime(2026, 7, 27, 12, 0, tzinfo=UTC)
    assert (subscription.status, subscription.cancel_requested_at) == (
        SubscriptionStatus.CANCEL_REQUESTED,
        NOW,
    )

    # Asking again another day keeps the win-back already planned; once it went, a new one is planned.
    later = record_cancellation(
        session=session, customer=customer, conversation=None, now=NOW + timedelta(days=3)
    )
    assert later.id == first.id
    first.status = DeliveryStatus.SENT
    session.flush()
    after = record_cancellation(
        session=session, customer=customer, conversation=None, now=NOW + timedelta(days=60)
    )
    assert after.id != first.id and len(deliveries(session, OutreachKind.WIN_BACK)) == 2
