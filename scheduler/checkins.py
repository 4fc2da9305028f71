"""Find who should hear from us, from CRM state: one idempotent delivery per occasion."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, extract, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm import drift as drift_rules
from bot.crm.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    DriftEpisode,
    Order,
    OrderStatus,
    OutreachKind,
)
from bot.crm.zones import zone_named
from scheduler.policy import zone_of

CHUNK = 500  # keys per IN (...) list, rows per INSERT
GREETING_HOUR = time(10, 0)  # local time for birthday and holiday greetings
DELIVERY_CHECK_AFTER = timedelta(days=2)
# Up to this long after arrival the check is still about the delivery: a scheduler that was down
# for a few days still asks; later, the question would come out of nowhere.
DELIVERY_CHECK_UNTIL = timedelta(days=5)


def enqueue(
    *,
    session: Session,
    key: str,
    kind: OutreachKind,
    customer_id: int,
    scheduled_for: datetime,
    payload: dict[str, Any] | None = None,
    campaign_id: int | None = None,
    complaint_id: int | None = None,
    existing: Collection[str] | None = None,
) -> bool:
    """Create the delivery unless its idempotency key exists; True if created.

    A sweep that queues many deliveries at once passes the keys that already exist, read in one
    query, instead of one look-up per key.
    """
    if existing is not None:
        if key in existing:
            return False
    elif session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key)) is not None:
        return False
    delivery = Delivery(
        idempotency_key=key,
        kind=kind,
        customer_id=customer_id,
        campaign_id=campaign_id,
        complaint_id=complaint_id,
        status=DeliveryStatus.QUEUED,
        scheduled_for=scheduled_for,
        payload=payload or {},
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:  # another process created it between our look-up and insert
        return False
    return True


def local_moment(customer: Customer, day: date, at: time) -> datetime:
    """`at` on `day` in the customer's time zone, as an aware datetime."""
    return datetime.combine(day, at, tzinfo=zone_of(customer))


def complaint_followups(*, session: Session, now: datetime) -> int:
    """Revisits of resolved cases whose follow-up is due (filing queued most of them already)."""
    created = 0
    for complaint in session.scalars(
        select(Complaint).where(
            Complaint.status == ComplaintStatus.RESOLVED,
            Complaint.followup_done_at.is_(None),
            Complaint.followup_due_at <= now,
        )
    ):
        created += enqueue(
            session=session,
            key=f"complaint_followup:complaint:{complaint.id}",
            kind=OutreachKind.COMPLAINT_FOLLOWUP,
            customer_id=complaint.customer_id,
            complaint_id=complaint.id,
            scheduled_for=complaint.followup_due_at or now,
            payload={"complaint_id": str(complaint.id)},
        )
    # Deliveries queued at filing time learn which case they are about.
    for delivery in session.scalars(
        select(Delivery).where(
            Delivery.kind == OutreachKind.COMPLAINT_FOLLOWUP, Delivery.status == DeliveryStatus.QUEUED
        )
    ):
        if delivery.complaint_id and not delivery.payload:
            delivery.payload = {"complaint_id": str(delivery.complaint_id)}
    return created


def delivery_checks(*, session: Session, now: datetime) -> int:
    """A short satisfaction check two days after an order arrived (at the latest five)."""
    created = 0
    window_start = now - DELIVERY_CHECK_UNTIL
    for order in session.scalars(
        select(Order).where(
            Order.status == OrderStatus.DELIVERED,
            Order.delivered_at <= now - DELIVERY_CHECK_AFTER,
            Order.delivered_at > window_start,
        )
    ):
        created += enqueue(
            session=session,
            key=f"delivery_check:order:{order.id}",
            kind=OutreachKind.DELIVERY_CHECK,
            customer_id=order.customer_id,
            scheduled_for=now,
            payload={"order_id": order.number},
        )
    return created


def drift(*, session: Session, now: datetime) -> dict[str, int]:
    """Catch customers drifting away (bot/crm/drift.py): end the episodes that are over, open one per
    new spell, and act on it: a task for a person (MVC, MCC) or the check-in worded to the reason.

    Reads every customer's signals, so it runs with the nightly refresh, not with every sweep."""
    ended = drift_rules.close_episodes(session=session, now=now)
    opened = drift_rules.open_episodes(
        session=session, now=now, found=drift_rules.drifting(session=session, now=now)
    )
    counts = {"drift_task": 0, "drift_checkin": 0, "drift_not_chased": 0, **ended}
    for episode in opened:
        counts[f"drift_{episode.action}"] += 1
    queue_checkins(session=session, episodes=[e for e in opened if e.action == "checkin"], now=now)
    return counts


def queue_checkins(*, session: Session, episodes: Sequence[DriftEpisode], now: datetime) -> None:
    """`queue_checkin` for many episodes in a few statements: the keys that exist are read once per
    chunk, the new deliveries written in one INSERT per chunk and linked from their episodes. Should
    another process write one of the keys meanwhile, the batch is undone and each goes on its own."""
    if not episodes:
        return
    keys = [drift_rules.checkin_key(episode) for episode in episodes]
    ids: dict[str, int] = {}
    for start in range(0, len(keys), CHUNK):
        ids.update(
            session.execute(
                select(Delivery.idempotency_key, Delivery.id).where(
                    Delivery.idempotency_key.in_(keys[start : start + CHUNK])
                )
            )
            .tuples()
            .all()
        )
    rows = {
        key: {
            "idempotency_key": key,
            "kind": OutreachKind.SILENCE,
            "customer_id": episode.customer_id,
            "status": DeliveryStatus.QUEUED,
            "scheduled_for": now,
            "payload": {"drift_reason": episode.reason},
        }
        for key, episode in zip(keys, episodes, strict=True)
        if key not in ids
    }
    new = list(rows.values())
    try:
        with session.begin_nested():
            for start in range(0, len(new), CHUNK):
                session.execute(insert(Delivery), new[start : start + CHUNK])
    except IntegrityError:  # another process queued one of them between our look-up and insert
        for episode in episodes:
            queue_checkin(session=session, episode=episode, now=now)
        return
    for start in range(0, len(new), CHUNK):
        chunk = [row["idempotency_key"] for row in new[start : start + CHUNK]]
        ids.update(
            session.execute(
                select(Delivery.idempotency_key, Delivery.id).where(Delivery.idempotency_key.in_(chunk))
            )
            .tuples()
            .all()
        )
    for key, episode in zip(keys, episodes, strict=True):
        episode.delivery_id = ids.get(key)


def queue_checkin(*, session: Session, episode: DriftEpisode, now: datetime) -> None:
    """The silence check-in for one episode, worded to its reason; the sender's policy gate decides
    whether and when it goes out (consent, quiet hours, cap), and the delivery records why not."""
    key = drift_rules.checkin_key(episode)
    enqueue(
        session=session,
        key=key,
        kind=OutreachKind.SILENCE,
        customer_id=episode.customer_id,
        scheduled_for=now,
        payload={"drift_reason": episode.reason},
    )
    drift_rules.link_delivery(session=session, episode=episode, key=key)


def greetings(*, session: Session, now: datetime, holidays: dict[str, str]) -> int:
    """Birthday and holiday greetings at 10:00 on the day, in each customer's own time zone."""
    near = dates_around(now)
    created = birthdays(session=session, now=now, near=near)
    if any(f"{day:%m-%d}" in holidays for day in near):
        created += holiday_greetings(session=session, now=now, holidays=holidays, near=near)
    return created


def dates_around(now: datetime) -> tuple[date, date, date]:
    """Every date it can be in some time zone at `now`: zones run from UTC-12 to UTC+14."""
    today = now.astimezone(timezone.utc).date()
    return today - timedelta(days=1), today, today + timedelta(days=1)


def birthdays(*, session: Session, now: datetime, near: tuple[date, ...]) -> int:
    """Greet the customers whose birthday it is where they live; only those born on a near date are read."""
    born_near = or_(
        *(
            and_(
                extract("month", Customer.birthday) == day.month, extract("day", Customer.birthday) == day.day
            )
            for day in near
        )
    )
    created = 0
    for customer in session.scalars(select(Customer).where(Customer.erased_at.is_(None), born_near)).all():
        today = now.astimezone(zone_of(customer)).date()
        if customer.birthday and (customer.birthday.month, customer.birthday.day) == (today.month, today.day):
            created += enqueue(
                session=session,
                key=f"birthday:customer:{customer.id}:{today.year}",
                kind=OutreachKind.BIRTHDAY,
                customer_id=customer.id,
                scheduled_for=local_moment(customer, today, GREETING_HOUR),
            )
    return created


def holiday_greetings(
    *, session: Session, now: datetime, holidays: dict[str, str], near: tuple[date, ...]
) -> int:
    """Greet every customer whose own date is a holiday; the keys already queued are read in one query."""
    patterns = [f"holiday:{day:%m-%d}:customer:%:{day.year}" for day in near if f"{day:%m-%d}" in holidays]
    existing = set(
        session.scalars(
            select(Delivery.idempotency_key).where(or_(*(Delivery.idempotency_key.like(p) for p in patterns)))
        )
    )
    created = 0
    for customer_id, zone_name in session.execute(
        select(Customer.id, Customer.timezone).where(Customer.erased_at.is_(None))
    ).all():
        zone = zone_named(zone_name)
        today = now.astimezone(zone).date()
        name = holidays.get(f"{today:%m-%d}")
        if name:
            created += enqueue(
                session=session,
                key=f"holiday:{today:%m-%d}:customer:{customer_id}:{today.year}",
                kind=OutreachKind.HOLIDAY,
                customer_id=customer_id,
                scheduled_for=datetime.combine(today, GREETING_HOUR, tzinfo=zone),
                payload={"holiday_name": name},
                existing=existing,
            )
    return created


def parse_holidays(entries: tuple[str, ...]) -> dict[str, str]:
    """`12-25 Christmas` entries as {"12-25": "Christmas"}."""
    calendar = {}
    for entry in entries:
        day, _, name = entry.strip().partition(" ")
        # Parsed within a leap year, so that 02-29 is a date; raises on a malformed entry.
        month_day = datetime.strptime(f"2000-{day}", "%Y-%m-%d")
        calendar[f"{month_day:%m-%d}"] = name.strip() or "the holidays"
    return calendar


def sweep(*, session: Session, now: datetime, holidays: dict[str, str]) -> dict[str, int]:
    """Every automatic check-in, once per occasion."""
    return {
        "complaint_followup": complaint_followups(session=session, now=now),
        "delivery_check": delivery_checks(session=session, now=now),
        "greetings": greetings(session=session, now=now, holidays=holidays),
    }
