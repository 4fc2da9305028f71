"""What marketers read about a campaign: the preview, counts by state, and the delivery rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Campaign,
    Consent,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
)
from scheduler.audience import Audience, render
from scheduler.campaigns.fanout import occurrence_key_prefix


@dataclass(frozen=True)
class Preview:
    size: int  # customers in the audience now
    consenting: int  # of them, those who agreed to marketing messages (the others will be skipped)
    sample: Customer | None  # the first of them
    text: str | None  # the message rendered for the sample


def preview_for(*, session: Session, audience: Audience, message: str, now: datetime) -> Preview:
    """The audience's size now, how many of them may get marketing, and the message as its first
    customer would read it."""
    members = audience.query(now)
    sample_id = session.scalar(members.limit(1))
    sample = session.get(Customer, sample_id) if sample_id else None
    text = render(message, sample) if sample else None
    consenting = session.scalar(
        select(func.count(Consent.id)).where(
            Consent.customer_id.in_(members.order_by(None)),
            Consent.purpose == ConsentPurpose.MARKETING,
            Consent.granted.is_(True),
        )
    )  # the rule of bot.crm.queries.consent_of: without a record, no marketing
    return Preview(audience.count(session=session, now=now), int(consenting or 0), sample, text)


def preview(*, session: Session, campaign: Campaign, now: datetime) -> tuple[int, str | None]:
    """(audience size now, the message rendered for the first customer in it)."""
    shown = preview_for(
        session=session, audience=Audience.parse(campaign.audience), message=campaign.message, now=now
    )
    return shown.size, shown.text


def figures(*, session: Session, campaign_id: int) -> dict[str, int]:
    """Deliveries by status (skips by reason) and replies attributed to the campaign."""
    rows = session.execute(
        select(Delivery.status, Delivery.skip_reason, func.count(Delivery.id))
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status, Delivery.skip_reason)
    ).all()
    counts: dict[str, int] = {}
    for status, reason, count in rows:
        label = f"skipped:{reason}" if status is DeliveryStatus.SKIPPED else status.value
        counts[label] = counts.get(label, 0) + count
    counts["replied"] = int(
        session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.campaign_id == campaign_id, Delivery.replied_at.is_not(None)
            )
        )
        or 0
    )
    counts["total"] = sum(v for k, v in counts.items() if k != "replied")
    return counts


def occurrence_figures(
    *, session: Session, campaign_id: int, limit: int = 14
) -> list[tuple[date, dict[str, int]]]:
    """The newest `limit` occurrences of a (recurring) campaign, each with its own figures, in the
    shape of `figures` (skips by reason, replies, total)."""
    prefix = occurrence_key_prefix(campaign_id)
    day = func.substr(Delivery.idempotency_key, len(prefix) + 1, 10)
    replied = func.sum(case((Delivery.replied_at.is_not(None), 1), else_=0))
    newest = (
        select(day.label("day"))
        .where(Delivery.campaign_id == campaign_id)
        .group_by(day)
        .order_by(day.desc())
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(day, Delivery.status, Delivery.skip_reason, func.count(Delivery.id), replied)
        .where(Delivery.campaign_id == campaign_id, day.in_(select(newest.c.day)))
        .group_by(day, Delivery.status, Delivery.skip_reason)
    ).all()
    by_day: dict[str, dict[str, int]] = {}
    for key, status, reason, count, replies in rows:
        counts = by_day.setdefault(key, {"replied": 0, "total": 0})
        label = f"skipped:{reason}" if status is DeliveryStatus.SKIPPED else status.value
        counts[label] = counts.get(label, 0) + count
        counts["replied"] += int(replies or 0)
        counts["total"] += count
    days = {key: _day(key) for key in by_day}
    return [(day, by_day[key]) for key, day in sorted(days.items(), reverse=True) if day is not None]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:  # a key written by hand, not by `fan_out`
        return None


def delivery_rows(
    *,
    session: Session,
    campaign_id: int,
    status: DeliveryStatus | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[tuple[Delivery, Customer]]:
    """The campaign's deliveries with their customers, newest occurrence first, optionally one status."""
    query = (
        select(Delivery, Customer)
        .join(Customer, Customer.id == Delivery.customer_id)
        .where(Delivery.campaign_id == campaign_id)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    query = query.order_by(Delivery.id.desc()).offset(offset).limit(limit)
    return [(row[0], row[1]) for row in session.execute(query)]
