"""The one policy gate in front of every proactive message: consent, reachability, quiet hours, cap.

Quiet hours are in the customer's own time zone and only ever delay a message (to the end of the
quiet window, DST-correct); a frequency cap counts every proactive message sent in the last seven
days, campaigns and check-ins alike. Follow-ups about the customer's own open case are service
messages: they need service consent and respect quiet hours, but not the weekly cap.

The cap counts delivery rows, and every proactive send has one: the scheduler's own, and one the
gateway writes for a send it was asked for directly (`reserve_contact`) or for a hand-back's
follow-up. A delivery counts from the moment it is reserved (claimed, or written) and stops
counting if its send fails. Deciding and reserving happen in one transaction that holds the
customer's lock (`lock_customer`), so two senders cannot both take the last place of the week.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.crm.models import (
    ConsentPurpose,
    Conversation,
    ConversationStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    EmailVerification,
    MailPurpose,
    OutboundMail,
    OutreachKind,
)
from bot.crm.queries import consent_of
from bot.crm.reachability import reachable
from bot.crm.zones import zone_named
from scheduler.states import DelayReason, SkipReason

MARKETING_KINDS = frozenset(
    {OutreachKind.CAMPAIGN, OutreachKind.BIRTHDAY, OutreachKind.HOLIDAY, OutreachKind.WIN_BACK}
)
UNCAPPED_KINDS = frozenset({OutreachKind.COMPLAINT_FOLLOWUP, OutreachKind.HANDBACK, OutreachKind.CASE_UPDATE})
INTENT_FOR = {
    OutreachKind.COMPLAINT_FOLLOWUP: "EXTERNAL_checkin",
    OutreachKind.DELIVERY_CHECK: "EXTERNAL_delivery_check",
    OutreachKind.SILENCE: "EXTERNAL_silence",
    OutreachKind.BIRTHDAY: "EXTERNAL_birthday",
    OutreachKind.HOLIDAY: "EXTERNAL_holiday",
    OutreachKind.WIN_BACK: "EXTERNAL_win_back",
    OutreachKind.CAMPAIGN: "EXTERNAL_campaign",
    OutreachKind.SURVEY: "EXTERNAL_survey",
    OutreachKind.HANDBACK: "EXTERNAL_handback",
    # A case's resolution or question, written by a person: the domain's one intent that says a
    # given text (campaign_text, no buttons). Its kind, not the intent, decides consent and cap.
    OutreachKind.CASE_UPDATE: "EXTERNAL_campaign",
}
# A direct send of EXTERNAL_campaign (not claimed by the scheduler) is counted as a campaign.
KIND_OF_INTENT = {intent: kind for kind, intent in INTENT_FOR.items() if kind is not OutreachKind.CASE_UPDATE}
CAP_WINDOW = timedelta(days=7)
WITH_PERSON_RETRY = timedelta(minutes=30)  # a chat with a person is not interrupted; try again later


class Outcome(str, enum.Enum):
    SEND = "send"
    DELAY = "delay"
    SKIP = "skip"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: SkipReason | DelayReason | None = None  # why it is skipped, or why it waits
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


class FrequencyCap(Exception):
    """The customer had all the proactive messages a week allows."""


def sent_this_week(*, session: Session, customer_id: int, now: datetime, excluding: int | None = None) -> int:
    """Proactive messages of the last seven days, those being sent right now included; `excluding`
    is the delivery being decided (its own claim is not a contact yet)."""
    query = select(func.count(Delivery.id)).where(
        Delivery.customer_id == customer_id,
        or_(
            (Delivery.status == DeliveryStatus.SENT) & (Delivery.sent_at >= now - CAP_WINDOW),
            Delivery.status == DeliveryStatus.SENDING,
        ),
    )
    if excluding is not None:
        query = query.where(Delivery.id != excluding)
    return int(session.scalar(query) or 0)


def lock_customer(*, session: Session, customer_id: int) -> None:
    """Hold the customer's row until the transaction ends: contact decisions for one customer
    take turns. PostgreSQL locks the row; SQLite has one writer at a time, and a write makes this
    transaction that writer (SQLite ignores FOR UPDATE)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(id=Customer.id)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())


def over_cap(
    *,
    session: Session,
    customer_id: int,
    kind: OutreachKind,
    now: datetime,
    weekly_cap: int,
    excluding: int | None = None,
) -> bool:
    """Would one more message of this kind exceed the weekly cap? (Call under `lock_customer`.)"""
    if kind in UNCAPPED_KINDS:
        return False
    return (
        sent_this_week(session=session, customer_id=customer_id, now=now, excluding=excluding) >= weekly_cap
    )


def reserve_contact(
    *, session: Session, customer_id: int, intent: str, key: str | None, now: datetime, weekly_cap: int
) -> int | None:
    """Count a proactive send the gateway is about to make, or raise FrequencyCap; the id of the
    delivery that now counts it (None: the scheduler's claim already does, or the intent is not
    one of ours and Rasa will refuse it). `release_contact` undoes it if the send fails."""
    lock_customer(session=session, customer_id=customer_id)
    planned = session.scalar(select(Delivery).where(Delivery.idempotency_key == key)) if key else None
    if planned is not None and planned.status is DeliveryStatus.SENDING:
        return None  # claimed by the scheduler, which checked the cap under this same lock
    kind = KIND_OF_INTENT.get(intent)
    excluding = planned.id if planned is not None else None
    if over_cap(
        session=session,
        customer_id=customer_id,
        kind=kind or OutreachKind.CAMPAIGN,  # an unknown intent is capped like the rest
        now=now,
        weekly_cap=weekly_cap,
        excluding=excluding,
    ):
        raise FrequencyCap()
    if kind is None:
        return None
    return record_contact(
        session=session, customer_id=customer_id, kind=kind, key=key, now=now, planned=planned
    )


def record_contact(
    *,
    session: Session,
    customer_id: int,
    kind: OutreachKind,
    key: str | None,
    now: datetime,
    planned: Delivery | None = None,
) -> int:
    """Write (or reuse) the delivery row that counts a proactive send made now."""
    if planned is None and key is not None:
        planned = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    if planned is None:
        planned = Delivery(
            idempotency_key=key or f"direct:{uuid.uuid4()}", kind=kind, customer_id=customer_id, payload={}
        )
        session.add(planned)
    planned.status, planned.sent_at, planned.scheduled_for = DeliveryStatus.SENT, now, now
    planned.error, planned.skip_reason = None, None
    planned.attempts = (planned.attempts or 0) + 1
    session.flush()
    return planned.id


def release_contact(*, session: Session, delivery_id: int, error: str) -> None:
    """The send a reservation was for failed: it no longer counts."""
    delivery = session.get_one(Delivery, delivery_id)
    delivery.status, delivery.sent_at, delivery.error = DeliveryStatus.FAILED, None, error[:300]


def decide(
    *,
    session: Session,
    customer: Customer,
    kind: OutreachKind,
    now: datetime,
    policy: Policy,
    delivery_id: int | None = None,
) -> Verdict:
    """May this customer get a message of this kind now? Checked again right before every send
    (under `lock_customer`, with the claimed `delivery_id`, so that the cap cannot be raced)."""
    if customer.erased_at is not None:
        return Verdict(Outcome.SKIP, SkipReason.ERASED)
    if not consent_of(session=session, customer_id=customer.id, purpose=purpose_of(kind)):
        return Verdict(Outcome.SKIP, SkipReason.NO_CONSENT)
    if not reachable(session=session, customer=customer):
        return Verdict(Outcome.SKIP, SkipReason.UNREACHABLE)
    if over_cap(
        session=session,
        customer_id=customer.id,
        kind=kind,
        now=now,
        weekly_cap=policy.weekly_cap,
        excluding=delivery_id,
    ):
        return Verdict(Outcome.SKIP, SkipReason.FREQUENCY_CAP)
    wake = quiet_until(now, zone_of(customer), policy)
    if wake is not None:
        return Verdict(Outcome.DELAY, DelayReason.QUIET_HOURS, until=wake)
    if with_a_person(session=session, customer_id=customer.id):
        return Verdict(Outcome.DELAY, DelayReason.WITH_A_PERSON, until=now + WITH_PERSON_RETRY)
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


# Email (the gateway's outbox, bot/gateway/mailer.py) passes the same gate, with what each
# purpose needs: mails the customer just asked for (a confirmation, a receipt) go at once and need
# no marketing consent; a mail they did not ask for at that moment waits for the end of their
# quiet hours. Mails about their own account are service messages and are not capped.
MAIL_QUIET_PURPOSES = frozenset({MailPurpose.CASE_RESOLVED})
MAIL_CONSENT: dict[MailPurpose, ConsentPurpose] = {}  # none yet needs consent: no marketing by mail


def decide_mail(*, session: Session, mail: OutboundMail, now: datetime, policy: Policy) -> Verdict:
    """May this mail go now? Asked right before every send."""
    customer = session.get(Customer, mail.customer_id)
    if customer is None or customer.erased_at is not None:
        return Verdict(Outcome.SKIP, SkipReason.ERASED)
    if mail.purpose is MailPurpose.VERIFY_ADDRESS:
        verification = session.get(EmailVerification, mail.verification_id) if mail.verification_id else None
        waiting = (
            verification is not None
            and verification.address == mail.to_address
            and verification.confirmed_at is None
            and verification.revoked_at is None
            and verification.expires_at > now
        )
        if not waiting:
            return Verdict(Outcome.SKIP, SkipReason.NOT_NEEDED)
    elif not _confirmed_address(customer, mail.to_address, mail.purpose):
        return Verdict(Outcome.SKIP, SkipReason.UNVERIFIED_ADDRESS)
    needed = MAIL_CONSENT.get(mail.purpose)
    if needed is not None and not consent_of(session=session, customer_id=customer.id, purpose=needed):
        return Verdict(Outcome.SKIP, SkipReason.NO_CONSENT)
    if mail.purpose in MAIL_QUIET_PURPOSES:
        wake = quiet_until(now, zone_of(customer), policy)
        if wake is not None:
            return Verdict(Outcome.DELAY, DelayReason.QUIET_HOURS, until=wake)
    return Verdict(Outcome.SEND)


def _confirmed_address(customer: Customer, address: str, purpose: MailPurpose) -> bool:
    """The address is the customer's confirmed one; the notice that an address was replaced goes
    to the address confirmed before (it is no longer the customer's email by then)."""
    if purpose is MailPurpose.ADDRESS_REPLACED:
        return customer.email_verified_at is not None
    return customer.email == address and customer.email_verified_at is not None
