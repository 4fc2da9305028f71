"""The one policy gate in front of every proactive message: consent, reachability, quiet hours, cap.

Quiet hours are in the customer's own time zone and only ever delay a message (to the end of the
quiet window, DST-correct); a frequency cap counts every proactive message sent in the last seven
days, campaigns and check-ins alike. Follow-ups about the customer's own open case are service
messages: they need service consent and respect quiet hours, but not the weekly cap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    ConsentPurpose,
    Conversation,
    ConversationStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    OutreachKind,
)
from bot.crm.queries import consent_of
from bot.crm.reachability import reachable

MARKETING_KINDS = frozenset(
    {OutreachKind.CAMPAIGN, OutreachKind.BIRTHDAY, OutreachKind.HOLIDAY, OutreachKind.WIN_BACK}
)
UNCAPPED_KINDS = frozenset({OutreachKind.COMPLAINT_FOLLOWUP})
CAP_WINDOW = timedelta(days=7)
WITH_PERSON_RETRY = timedelta(minutes=30)  # a chat with a person is not interrupted; try again later


class Outcome(str, enum.Enum):
    SEND = "send"
    DELAY = "delay"
    SKIP = "skip"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str | None = None  # why skipped: no_consent, unreachable, frequency_cap, erased
    until: datetime | None = None  # when a delayed message may go


@dataclass(frozen=True)
class Policy:
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    weekly_cap: int = 3

    @classmethod
    def parse(cls, quiet_hours: str, weekly_cap: int) -> Policy:
        """From settings: quiet hours as `HH:MM-HH:MM`."""
        start, _, end = quiet_hours.partition("-")
        try:
            return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()), weekly_cap)
        except ValueError:
            raise ValueError(f"OUTREACH_QUIET_HOURS={quiet_hours!r} must look like 21:00-09:00") from None


def purpose_of(kind: OutreachKind) -> ConsentPurpose:
    return ConsentPurpose.MARKETING if kind in MARKETING_KINDS else ConsentPurpose.SERVICE


def zone_of(customer: Customer) -> ZoneInfo:
    return zone_named(customer.timezone)


def zone_named(name: str | None) -> ZoneInfo:
    """The time zone of that name; UTC when it is missing or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def quiet_until(now: datetime, tz: ZoneInfo, policy: Policy) -> datetime | None:
    """When the quiet window that `now` falls in ends (aware UTC), or None if it is not quiet."""
    local = now.astimezone(tz)
    start, end = policy.quiet_start, policy.quiet_end
    moment = local.time()
    overnight = start > end
    quiet = (moment >= start or moment < end) if overnight else (start <= moment < end)
    if not quiet:
        return None
    day = local.date() + timedelta(days=1) if overnight and moment >= start else local.date()
    # Build the wall-clock end in the zone, so a DST change in between is handled by zoneinfo.
    wake = datetime.combine(day, end, tzinfo=tz)
    return wake.astimezone(now.tzinfo)


def sent_this_week(*, session: Session, customer_id: int, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.customer_id == customer_id,
                Delivery.status == DeliveryStatus.SENT,
                Delivery.sent_at >= now - CAP_WINDOW,
            )
        )
        or 0
    )


def decide(
    *, session: Session, customer: Customer, kind: OutreachKind, now: datetime, policy: Policy
) -> Verdict:
    """May this customer get a message of this kind now? Checked again right before every send."""
    if customer.erased_at is not None:
        return Verdict(Outcome.SKIP, "erased")
    if not consent_of(session=session, customer_id=customer.id, purpose=purpose_of(kind)):
        return Verdict(Outcome.SKIP, "no_consent")
    if not reachable(session=session, customer=customer):
        return Verdict(Outcome.SKIP, "unreachable")
    if (
        kind not in UNCAPPED_KINDS
        and sent_this_week(session=session, customer_id=customer.id, now=now) >= policy.weekly_cap
    ):
        return Verdict(Outcome.SKIP, "frequency_cap")
    wake = quiet_until(now, zone_of(customer), policy)
    if wake is not None:
        return Verdict(Outcome.DELAY, "quiet_hours", until=wake)
    if with_a_person(session=session, customer_id=customer.id):
        return Verdict(Outcome.DELAY, "with_a_person", until=now + WITH_PERSON_RETRY)
    return Verdict(Outcome.SEND)


def with_a_person(*, session: Session, customer_id: int) -> bool:
    """A person is talking with the customer right now (the bot is paused in that conversation)."""
    return (
        session.scalar(
            select(func.count(Conversation.id)).where(
                Conversation.customer_id == customer_id,
                Conversation.status == ConversationStatus.HANDED_OFF,
            )
        )
        or 0
    ) > 0
