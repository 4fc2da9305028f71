"""Marketers' campaigns: create, preview, schedule, and fan out one delivery per audience member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    OutreachKind,
)
from bot.crm.queries import record_audit
from scheduler.audience import Audience, InvalidAudience, check_message, render
from scheduler.checkins import enqueue, local_moment

EVERY = ("once", "day", "week")
REPLY_WINDOW = timedelta(hours=48)


@dataclass(frozen=True)
class Schedule:
    """When: a local date and time in each customer's own zone, once or repeating."""

    start: date
    at: time
    every: str = "once"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Schedule:
        try:
            start = date.fromisoformat(str(data["date"]))
            at = time.fromisoformat(str(data.get("time", "10:00")))
        except (KeyError, ValueError):
            raise InvalidAudience("the schedule needs a date (YYYY-MM-DD) and a time (HH:MM)") from None
        every = str(data.get("every", "once"))
        if every not in EVERY:
            raise InvalidAudience(f"every must be one of {', '.join(EVERY)}")
        return cls(start, at, every)

    def as_dict(self) -> dict[str, str]:
        return {"date": self.start.isoformat(), "time": self.at.strftime("%H:%M"), "every": self.every}

    def occurrences_until(self, day: date) -> list[date]:
        """Every occurrence from the start up to and including `day`."""
        if day < self.start:
            return []
        if self.every == "once":
            return [self.start]
        step = 1 if self.every == "day" else 7
        return [self.start + timedelta(days=n) for n in range(0, (day - self.start).days + 1, step)]


def create_campaign(
    *,
    session: Session,
    name: str,
    message: str,
    audience: dict[str, Any],
    schedule: dict[str, Any],
    buttons: list[str] | None = None,
    created_by: int | None = None,
) -> Campaign:
    """Validate and store a scheduled campaign; InvalidAudience says what a marketer must fix."""
    if not name.strip() or len(name) > 120:
        raise InvalidAudience("the name must be 1-120 characters")
    check_message(message)
    parsed = Audience.parse(audience)
    when = Schedule.parse(schedule)
    labels = [b.strip()[:40] for b in (buttons or []) if b.strip()]
    if len(labels) > 2:
        raise InvalidAudience("at most two buttons")
    campaign = Campaign(
        name=name.strip(),
        message=message,
        audience=parsed.as_dict(),
        schedule=when.as_dict(),
        buttons=[{"title": label} for label in labels],
        status=CampaignStatus.SCHEDULED,
        created_by=created_by,
    )
    session.add(campaign)
    session.flush()
    record_audit(
        session=session,
        actor=f"agent:{created_by}" if created_by else "cli",
        action="campaign_created",
        entity="campaign",
        entity_id=campaign.id,
        details={"name": campaign.name},
    )
    return campaign


def preview(*, session: Session, campaign: Campaign, now: datetime) -> tuple[int, str | None]:
    """(audience size now, the message rendered for the first customer in it)."""
    audience = Audience.parse(campaign.audience)
    sample_id = session.scalar(audience.query(now).limit(1))
    sample = session.get(Customer, sample_id) if sample_id else None
    return audience.count(session=session, now=now), render(campaign.message, sample) if sample else None


def set_status(*, session: Session, campaign: Campaign, status: CampaignStatus, actor: str) -> None:
    """Pause, resume or cancel. The sender holds a paused campaign's deliveries; cancelling drops them."""
    campaign.status = status
    if status is CampaignStatus.CANCELLED:
        for delivery in session.scalars(
            select(Delivery).where(
                Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.QUEUED
            )
        ):
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, "campaign_cancelled"
    record_audit(
        session=session,
        actor=actor,
        action=f"campaign_{status.value}",
        entity="campaign",
        entity_id=campaign.id,
    )


def fan_out(*, session: Session, campaign: Campaign, occurrence: date, now: datetime) -> int:
    """One delivery per audience member for this occurrence, at the local time in their zone."""
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING):
        return 0
    audience = Audience.parse(campaign.audience)
    schedule = Schedule.parse(campaign.schedule)
    labels = [b["title"] for b in campaign.buttons]
    created = 0
    for customer in session.scalars(select(Customer).where(Customer.id.in_(audience.query(now)))):
        entities: dict[str, Any] = {"campaign_text": render(campaign.message, customer)}
        for n, label in enumerate(labels, start=1):
            entities[f"campaign_button_{n}"] = label
        created += enqueue(
            session=session,
            key=f"campaign:{campaign.id}:{occurrence.isoformat()}:customer:{customer.id}",
            kind=OutreachKind.CAMPAIGN,
            customer_id=customer.id,
            campaign_id=campaign.id,
            scheduled_for=local_moment(customer, occurrence, schedule.at),
            payload=entities,
        )
    campaign.status = CampaignStatus.SENDING
    return created


def due_occurrences(*, campaign: Campaign, now: datetime) -> list[date]:
    """Occurrences whose local day has begun somewhere on Earth (UTC+14), up to today's."""
    schedule = Schedule.parse(campaign.schedule)
    return schedule.occurrences_until((now + timedelta(hours=14)).date())


def attribute_replies(*, session: Session, now: datetime) -> int:
    """Mark sent messages the customer answered within 48 hours (for campaign reply figures)."""
    marked = 0
    recent = select(Delivery).where(
        Delivery.status == DeliveryStatus.SENT,
        Delivery.replied_at.is_(None),
        Delivery.sent_at >= now - REPLY_WINDOW,
    )
    for delivery in session.scalars(recent):
        assert delivery.sent_at is not None
        replied = session.scalar(
            select(func.min(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.customer_id == delivery.customer_id,
                Message.direction == Direction.INBOUND,
                Message.created_at > delivery.sent_at,
                Message.created_at <= delivery.sent_at + REPLY_WINDOW,
            )
        )
        if replied is not None:
            if isinstance(replied, str):  # SQLite hands aggregates back as text
                replied = datetime.fromisoformat(replied)
            delivery.replied_at = replied if replied.tzinfo else replied.replace(tzinfo=timezone.utc)
            marked += 1
    return marked


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
