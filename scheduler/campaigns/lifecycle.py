"""A campaign's states and the moves between them: create, edit, schedule, pause, cancel, done.

Every move is one conditional UPDATE (`move`), so a marketer's click and a sweep's fan-out never
overwrite each other."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.crm.db import rows_changed
from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
)
from bot.crm.queries import record_audit
from scheduler.audience import InvalidAudience
from scheduler.campaigns.draft import Draft, check_campaign
from scheduler.campaigns.schedule import Schedule, check_not_past
from scheduler.states import SkipReason

EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED})
# What a marketer (page or CLI) may do to a campaign, and from which states.


# What a marketer (page or CLI) may do to a campaign, and from which states.
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "schedule": (frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED}), CampaignStatus.SCHEDULED),
    "pause": (frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING}), CampaignStatus.PAUSED),
    "cancel": (
        frozenset(
            {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED}
        ),
        CampaignStatus.CANCELLED,
    ),
}


PAST_TENSE = {"schedule": "scheduled", "pause": "paused", "cancel": "cancelled"}


def create_campaign(
    *,
    session: Session,
    name: str,
    message: str,
    audience: dict[str, Any],
    schedule: dict[str, Any],
    buttons: list[str] | None = None,
    created_by: int | None = None,
    now: datetime | None = None,
    draft: bool = False,
) -> Campaign:
    """Validate and store a campaign, scheduled (or a draft); InvalidAudience says what to fix."""
    checked = check_campaign(
        name=name, message=message, audience=audience, schedule=schedule, buttons=buttons, now=now
    )
    campaign = Campaign(
        status=CampaignStatus.DRAFT if draft else CampaignStatus.SCHEDULED, created_by=created_by
    )
    _apply(campaign, checked)
    session.add(campaign)
    session.flush()
    record_audit(
        session=session,
        actor=f"agent:{created_by}" if created_by else "cli",
        action="campaign_created",
        entity="campaign",
        entity_id=campaign.id,
        details={"name": campaign.name, "status": campaign.status.value},
    )
    return campaign


def _apply(campaign: Campaign, checked: Draft) -> None:
    campaign.name = checked.name
    campaign.message = checked.message
    campaign.audience = checked.audience.as_dict()
    campaign.schedule = checked.schedule.as_dict()
    campaign.buttons = [{"title": label} for label in checked.buttons]


def has_deliveries(*, session: Session, campaign_id: int) -> bool:
    return session.scalar(select(Delivery.id).where(Delivery.campaign_id == campaign_id).limit(1)) is not None


def editable(*, session: Session, campaign: Campaign) -> bool:
    """A campaign can be changed until its first delivery is queued."""
    return campaign.status in EDITABLE and not has_deliveries(session=session, campaign_id=campaign.id)


def update_campaign(
    *,
    session: Session,
    campaign: Campaign,
    name: str,
    message: str,
    audience: dict[str, Any],
    schedule: dict[str, Any],
    buttons: list[str] | None = None,
    actor: str,
    now: datetime,
) -> None:
    """Change a campaign that has not started sending; InvalidAudience says what to fix."""
    checked = check_campaign(
        name=name, message=message, audience=audience, schedule=schedule, buttons=buttons, now=now
    )
    # Take the row (and re-read its status) before checking, so a sweep fanning it out now waits or wins.
    if not move(session, campaign, EDITABLE, None) or has_deliveries(
        session=session, campaign_id=campaign.id
    ):
        raise InvalidAudience(
            "this campaign has started sending and can no longer be changed: pause or cancel it, "
            "or create a new one"
        )
    _apply(campaign, checked)
    session.flush()
    record_audit(
        session=session, actor=actor, action="campaign_edited", entity="campaign", entity_id=campaign.id
    )


def change_status(
    *, session: Session, campaign: Campaign, action: str, actor: str, now: datetime | None = None
) -> None:
    """Schedule (or resume), pause or cancel, when the campaign's state allows it.

    The sender holds a paused campaign's deliveries; cancelling skips those not yet sent. Scheduling
    a draft whose first send has passed everywhere is refused (given `now`).
    """
    if action not in TRANSITIONS:
        raise InvalidAudience(f"unknown action {action!r}: use {', '.join(TRANSITIONS)}")
    sources, target = TRANSITIONS[action]
    if action == "schedule" and campaign.status is CampaignStatus.DRAFT and now is not None:
        check_not_past(Schedule.parse(campaign.schedule), now)
    if not move(session, campaign, sources, target):
        raise InvalidAudience(f"a {campaign.status.value} campaign cannot be {PAST_TENSE[action]}")
    if target is CampaignStatus.CANCELLED:
        for delivery in session.scalars(
            select(Delivery).where(
                Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.QUEUED
            )
        ):
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, SkipReason.CAMPAIGN_CANCELLED
    record_audit(
        session=session,
        actor=actor,
        action=f"campaign_{target.value}",
        entity="campaign",
        entity_id=campaign.id,
    )


def move(
    session: Session, campaign: Campaign, sources: frozenset[CampaignStatus], target: CampaignStatus | None
) -> bool:
    """Set the status only if it is still one of `sources`, in one conditional UPDATE, so a
    marketer's pause and a sweep's fan-out never overwrite each other; None just takes the row."""
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status.in_(list(sources)))
        .values(status=target if target is not None else Campaign.status)
        .execution_options(synchronize_session=False)
    )
    session.refresh(campaign)
    return rows_changed(result) == 1


def close_if_done(*, session: Session, campaign: Campaign) -> None:
    """A one-off campaign is done once nothing of it is left to send."""
    if campaign.schedule.get("every", "once") != "once" or campaign.status is not CampaignStatus.SENDING:
        return
    open_left = session.scalar(
        select(Delivery.id).where(
            Delivery.campaign_id == campaign.id,
            Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENDING)),
        )
    )
    if open_left is None:
        move(session, campaign, frozenset({CampaignStatus.SENDING}), CampaignStatus.DONE)
