"""Marketers' campaigns: create, preview, schedule, and fan out one delivery per audience member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from bot.crm import churn
from bot.crm.clock import aggregate_time
from bot.crm.db import rows_changed
from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Consent,
    ConsentPurpose,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    OutreachKind,
)
from bot.crm.queries import record_audit
from bot.gateway.limits import reads_as_intent
from scheduler.audience import Audience, InvalidAudience, check_message, render
from scheduler.checkins import enqueue
from scheduler.policy import zone_of
from scheduler.states import SkipReason

EVERY = ("once", "day", "week")
ZONES = ("local", "utc")  # each customer's own time, or one moment for everyone
REPLY_WINDOW = timedelta(hours=48)
MAX_BUTTONS = 2
# The first and last places on Earth where a local date and time happens.
EARLIEST_ZONE, LATEST_ZONE = timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))
EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED})
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


@dataclass(frozen=True)
class Schedule:
    """When: a date and time in each customer's own zone (`zone` "local"), or one moment for
    everyone (`zone` "utc", e.g. "send now"); once or repeating."""

    start: date
    at: time
    every: str = "once"
    zone: str = "local"

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
        zone = str(data.get("zone", "local"))
        if zone not in ZONES:
            raise InvalidAudience(f"zone must be one of {', '.join(ZONES)}")
        return cls(start, at, every, zone)

    def as_dict(self) -> dict[str, str]:
        data = {"date": self.start.isoformat(), "time": self.at.strftime("%H:%M"), "every": self.every}
        return data if self.zone == "local" else {**data, "zone": self.zone}

    def occurrences_until(self, day: date) -> list[date]:
        """Every occurrence from the start up to and including `day`."""
        if day < self.start:
            return []
        if self.every == "once":
            return [self.start]
        step = 1 if self.every == "day" else 7
        return [self.start + timedelta(days=n) for n in range(0, (day - self.start).days + 1, step)]

    def first_send(self, zone: timezone) -> datetime:
        """The first occurrence's moment for a customer in `zone`."""
        return self.moment(self.start, zone)

    def moment(self, day: date, zone: tzinfo) -> datetime:
        """An occurrence's moment for a customer in `zone` (the same moment everywhere in UTC mode)."""
        return datetime.combine(day, self.at, tzinfo=timezone.utc if self.zone == "utc" else zone)


def check_not_past(schedule: Schedule, now: datetime) -> None:
    """Refuse a first send that has already passed in every time zone on Earth (in UTC mode: passed)."""
    if schedule.first_send(LATEST_ZONE) <= now:
        when = f"{schedule.start.isoformat()} {schedule.at.strftime('%H:%M')}"
        everywhere = schedule.zone == "local"
        where = " has already passed in every time zone" if everywhere else " UTC has already passed"
        raise InvalidAudience(f"{when}{where}: choose a later date or time")


def begun_somewhere(schedule: Schedule, now: datetime) -> bool:
    """The first send's local time has passed in some zones (customers there get it at once)."""
    return schedule.first_send(EARLIEST_ZONE) <= now


@dataclass(frozen=True)
class Draft:
    """A campaign as a marketer entered it, validated, not stored."""

    name: str
    message: str
    audience: Audience
    schedule: Schedule
    buttons: tuple[str, ...]


def check_campaign(
    *,
    name: str,
    message: str,
    audience: dict[str, Any],
    schedule: dict[str, Any],
    buttons: list[str] | None = None,
    now: datetime | None = None,
) -> Draft:
    """Validate what a marketer entered; InvalidAudience says what to fix.

    With `now`, a first send that has passed everywhere is refused.
    """
    if not name.strip() or len(name.strip()) > 120:
        raise InvalidAudience("the name must be 1-120 characters")
    check_message(message)
    parsed = Audience.parse(audience)
    when = Schedule.parse(schedule)
    if now is not None:
        check_not_past(when, now)
    labels = tuple(b.strip() for b in (buttons or []) if b.strip())
    if len(labels) > MAX_BUTTONS:
        raise InvalidAudience(f"at most {MAX_BUTTONS} buttons")
    if any(len(label) > 40 for label in labels):
        raise InvalidAudience("a button label may have at most 40 characters")
    if any(reads_as_intent(label) for label in labels):  # a label is also the button's payload
        raise InvalidAudience(
            "a button label may not begin with a slash (/): the chat would read it as a command, "
            "not as the customer's answer. Write the answer in words, e.g. Tell me more"
        )
    return Draft(name.strip(), message, parsed, when, labels)


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
    if not _move(session, campaign, EDITABLE, None) or has_deliveries(
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
    if not _move(session, campaign, sources, target):
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


PAST_TENSE = {"schedule": "scheduled", "pause": "paused", "cancel": "cancelled"}


def _move(
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
        _move(session, campaign, frozenset({CampaignStatus.SENDING}), CampaignStatus.DONE)


def fan_out(*, session: Session, campaign: Campaign, occurrence: date, now: datetime) -> int:
    """One delivery per audience member for this occurrence, at the local time in their zone."""
    if campaign.status is CampaignStatus.SCHEDULED:
        # Taking it with a conditional UPDATE: a pause or an edit committed meanwhile wins.
        if not _move(session, campaign, frozenset({CampaignStatus.SCHEDULED}), CampaignStatus.SENDING):
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


def attribute_replies(*, session: Session, now: datetime) -> int:
    """Mark sent messages the customer answered within 48 hours (for campaign reply figures)."""
    marked = 0
    answered: set[int] = set()
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
            delivery.replied_at = aggregate_time(replied)
            marked += 1
            answered.add(delivery.customer_id)
    # An answer to our message is a sign of life: their churn risk now, not at night.
    if answered:
        churn.refresh_customers(session=session, customer_ids=answered, now=now)
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


def occurrence_key_prefix(campaign_id: int) -> str:
    """Deliveries of one campaign are keyed `campaign:<id>:<occurrence date>:customer:<id>`."""
    return f"campaign:{campaign_id}:"


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
