"""A due occurrence of a campaign becomes one queued delivery per audience member."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Customer,
    OutreachKind,
)
from scheduler.audience import Audience, render
from scheduler.campaigns.lifecycle import move
from scheduler.campaigns.schedule import Schedule
from scheduler.checkins import enqueue
from scheduler.policy import zone_of


def fan_out(*, session: Session, campaign: Campaign, occurrence: date, now: datetime) -> int:
    """One delivery per audience member for this occurrence, at the local time in their zone."""
    if campaign.status is CampaignStatus.SCHEDULED:
        # Taking it with a conditional UPDATE: a pause or an edit committed meanwhile wins.
        if not move(session, campaign, frozenset({CampaignStatus.SCHEDULED}), CampaignStatus.SENDING):
            return 0
    elif campaign.status is not CampaignStatus.SENDING:
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
            key=f"{occurrence_key_prefix(campaign.id)}{occurrence.isoformat()}:customer:{customer.id}",
            kind=OutreachKind.CAMPAIGN,
            customer_id=customer.id,
            campaign_id=campaign.id,
            scheduled_for=schedule.moment(occurrence, zone_of(customer)),
            payload=entities,
        )
    return created


def due_occurrences(*, campaign: Campaign, now: datetime) -> list[date]:
    """Occurrences whose day has begun somewhere on Earth (UTC+14; in UTC mode, in UTC), up to today's."""
    schedule = Schedule.parse(campaign.schedule)
    ahead = timedelta(hours=14) if schedule.zone == "local" else timedelta(0)
    return schedule.occurrences_until((now + ahead).date())


def occurrence_key_prefix(campaign_id: int) -> str:
    """Deliveries of one campaign are keyed `campaign:<id>:<occurrence date>:customer:<id>`."""
    return f"campaign:{campaign_id}:"
