"""Handing a conversation to a person, with a priority that puts urgent, valuable customers first."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import webhooks
from bot.crm.business_hours import BusinessHours
from bot.crm.models import (
    HANDOFF_CALLBACK,
    HANDOFF_LIVE,
    Agent,
    Channel,
    Complaint,
    ComplaintStatus,
    Conversation,
    ConversationStatus,
    Customer,
    Handoff,
    HandoffReason,
    HandoffStatus,
    InteractionEvent,
    Role,
    Segment,
    Severity,
    Temperament,
    utcnow,
)
from bot.crm.queries import log_interaction

SEGMENT_WEIGHT = {Segment.MVC: 40, Segment.MCC: 25, Segment.STANDARD: 10, Segment.BZ: 0}
SEVERITY_WEIGHT = {Severity.HIGH: 30, Severity.MEDIUM: 15, Severity.LOW: 0}
REASON_WEIGHT: dict[str, int] = {  # by the stored value, which a HandoffReason is
    HandoffReason.COMPLAINT: 10,
    HandoffReason.RETENTION: 20,
    HandoffReason.LOW_CSAT: 20,
    HandoffReason.FALLBACK: 5,
    HandoffReason.CUSTOMER_REQUEST: 5,
    HandoffReason.FOLLOW_UP: 15,  # the customer wrote again soon after a person closed their chat
}
FOLLOW_UP = HandoffReason.FOLLOW_UP
DEFAULT_HANDLE_MINUTES = 4.0  # until the CRM has enough finished chats to measure it
CALLBACK_WITHIN = timedelta(hours=2)  # of opening time, from now (closed hours do not count)


IRRITABLE_WEIGHT = 10
# The churn risk (bot/crm/churn.py, 0-1) adds up to the weight of a cancellation request: a customer
# about to leave is seen first. Below the floor the risk is ordinary background and adds nothing.
CHURN_RISK_WEIGHT = 20
CHURN_RISK_FLOOR = 0.3


def churn_points(risk: float) -> int:
    return round(CHURN_RISK_WEIGHT * min(risk, 1.0)) if risk >= CHURN_RISK_FLOOR else 0


def priority(
    *,
    segment: Segment,
    severity: Severity | None,
    reason: str,
    temperament: Temperament,
    churn_risk: float = 0.0,
) -> int:
    """Higher is more urgent; waiting time is added by the queue when it sorts."""
    score = SEGMENT_WEIGHT[segment] + REASON_WEIGHT.get(reason, 0) + churn_points(churn_risk)
    score += SEVERITY_WEIGHT[severity] if severity else 0
    return score + (IRRITABLE_WEIGHT if temperament is Temperament.IRRITABLE else 0)


def priority_parts(
    *, total: int, segment: Segment, reason: str, temperament: Temperament, churn_risk: float = 0.0
) -> list[tuple[str, int]]:
    """What made a stored priority, factor by factor, as (factor code, points), largest first.

    The severity is not stored on the handoff: it is what remains once the other factors are
    counted (when the customer's segment, temperament or churn risk changed since, the rest is
    "other")."""
    parts = [
        (f"segment:{segment.value}", SEGMENT_WEIGHT[segment]),
        (f"reason:{reason}", REASON_WEIGHT.get(reason, 0)),
        (f"churn:{round(churn_risk * 100)}", churn_points(churn_risk)),
    ]
    if temperament is Temperament.IRRITABLE:
        parts.append(("temperament:irritable", IRRITABLE_WEIGHT))
    rest = total - sum(points for _, points in parts)
    severity = next((s for s, w in SEVERITY_WEIGHT.items() if w == rest and w), None)
    if severity is not None:
        parts.append((f"severity:{severity.value}", rest))
    elif rest:
        parts.append(("other", rest))
    return sorted((p for p in parts if p[1]), key=lambda p: -p[1])


def open_handoff(
    *,
    session: Session,
    customer: Customer,
    conversation: Conversation,
    reason: str,
    severity: Severity | None = None,
    mode: str = HANDOFF_LIVE,
    callback_by: datetime | None = None,
    now: datetime | None = None,
    facts: dict[str, str] | None = None,
) -> tuple[Handoff, bool]:
    """Queue the conversation for a person, once; return (handoff, created).

    Live: a person takes over now, so the conversation is marked handed off (the gateway routes the
    customer's messages to the agent). Callback: filed for when someone is there; the bot goes on.
    `facts` are what the bot gathered before (a complaint's category, order and words, a reason for
    leaving), noted with the request so that the queue and the chat page show them (`handoff_facts`).
    """
    existing = session.scalar(
        select(Handoff).where(
            Handoff.conversation_id == conversation.id,
            Handoff.status.in_((HandoffStatus.QUEUED, HandoffStatus.CLAIMED)),
        )
    )
    if existing is not None:
        return existing, False
    now = now or utcnow()
    handoff = Handoff(
        conversation_id=conversation.id,
        customer_id=customer.id,
        reason=reason,
        status=HandoffStatus.QUEUED,
        mode=mode,
        callback_by=callback_by,
        priority=priority(
            segment=customer.segment,
            severity=severity,
            reason=reason,
            temperament=customer.temperament,
            churn_risk=customer.churn_risk or 0.0,
        ),
        requested_at=now,
    )
    session.add(handoff)
    if mode == HANDOFF_LIVE:
        conversation.status = ConversationStatus.HANDED_OFF
    session.flush()
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="handoff_requested",
        data={
            "handoff_id": handoff.id,
            "reason": reason,
            "priority": handoff.priority,
            "mode": mode,
            **({"facts": facts} if facts else {}),
        },
        now=now,
    )
    requested = {
        **webhooks.customer_ref(customer),
        "handoff_id": handoff.id,
        "conversation_id": conversation.id,
        "reason": reason,
        "mode": mode,
        "priority": handoff.priority,
        "callback_by": webhooks.when(callback_by),
    }
    webhooks.emit(session, "handoff.requested", requested, now=now)
    return handoff, True


def queue_position(*, session: Session, handoff: Handoff) -> int:
    """How many queued conversations are ahead of this one (by priority, then waiting time)."""
    ahead = session.scalars(
        select(Handoff.id).where(
            Handoff.status == HandoffStatus.QUEUED,
            Handoff.id != handoff.id,
            (Handoff.priority > handoff.priority)
            | ((Handoff.priority == handoff.priority) & (Handoff.requested_at < handoff.requested_at)),
        )
    ).all()
    return len(ahead)


def agents_online(*, session: Session, now: datetime, within_seconds: float) -> int:
    """How many active agents (or admins) had the console open within the last `within_seconds`."""
    return (
        session.scalar(
            select(func.count(Agent.id)).where(
                Agent.active.is_(True),
                Agent.role.in_((Role.AGENT, Role.LEAD, Role.ADMIN)),
                Agent.last_seen_at >= now - timedelta(seconds=within_seconds),
            )
        )
        or 0
    )


def handle_minutes(*, session: Session, now: datetime, days: int = 14) -> float:
    """How long a person spends on a chat, on average over the recent finished ones."""
    rows = session.execute(
        select(Handoff.claimed_at, Handoff.closed_at).where(
            Handoff.closed_at >= now - timedelta(days=days),
            Handoff.claimed_at.is_not(None),
        )
    ).all()
    spans = [(closed - claimed).total_seconds() / 60 for claimed, closed in rows if closed > claimed]
    return sum(spans) / len(spans) if len(spans) >= 5 else DEFAULT_HANDLE_MINUTES


def expected_wait_minutes(*, ahead: int, online: int, handle: float) -> int:
    """The wait to promise, in whole minutes: the chats ahead and this one, shared among the people online."""
    return max(1, math.ceil(handle * (ahead + 1) / max(online, 1)))


def complaint_severity(*, session: Session, conversation: Conversation) -> Severity | None:
    """The highest severity among the customer's open complaints (it raises the priority)."""
    severities = session.scalars(
        select(Complaint.severity).where(
            Complaint.customer_id == conversation.customer_id,
            Complaint.status.in_(
                (ComplaintStatus.OPEN, ComplaintStatus.IN_PROGRESS, ComplaintStatus.REOPENED)
            ),
        )
    ).all()
    order = [Severity.HIGH, Severity.MEDIUM, Severity.LOW]
    return next((level for level in order if level in severities), None)


def just_ended(
    *, session: Session, conversation: Conversation, now: datetime, within_hours: float = 24
) -> int | None:
    """The handoff of this conversation that a person finished recently (a rating now is about it)."""
    return session.scalar(
        select(Handoff.id)
        .where(
            Handoff.conversation_id == conversation.id,
            Handoff.status.in_((HandoffStatus.RETURNED, HandoffStatus.CLOSED)),
            Handoff.closed_at >= now - timedelta(hours=within_hours),
        )
        .order_by(Handoff.closed_at.desc())
        .limit(1)
    )


def callback_promise(*, hours: BusinessHours, now: datetime) -> datetime:
    """By when a person calls back: two hours of opening time from now. The one place the due time
    is computed: the chat's promise and the queue's due time are both this value, stored on the handoff."""
    return hours.add_open_time(now, CALLBACK_WITHIN) or now + CALLBACK_WITHIN


def callback_words(*, due: datetime, customer_zone: str | None, business_zone: str) -> str:
    """The promise as the customer and the queue both read it, with its time zone named:
    "by Monday 7 December, 10:00 Berlin time". A customer whose zone is unknown (UTC, the default)
    gets the business's zone: named, it is unambiguous, and it is the likelier one to be theirs."""
    name = customer_zone if customer_zone and customer_zone != "UTC" else business_zone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, name = ZoneInfo("UTC"), "UTC"
    local = due.astimezone(zone)
    return f"by {local.strftime('%A %-d %B')}, {local.strftime('%H:%M')} {zone_name(name)}"


def zone_name(key: str) -> str:
    """A zone as people say it: "Berlin time", "New York time", "UTC"."""
    if key in ("UTC", "Etc/UTC", "GMT"):
        return key.split("/")[-1]
    return f"{key.rsplit('/', 1)[-1].replace('_', ' ')} time"


def callback_route(*, customer: Customer, channel: Channel) -> str:
    """How a callback will reach the customer, as a code the bot's answer can depend on: `channel`
    (Telegram reaches them any time), `email` (a confirmed address), `phone`, else `chat` (a web
    visitor reads the answer in this chat when they come back)."""
    if channel is Channel.TELEGRAM:
        return "channel"
    if customer.email and customer.email_verified_at:
        return "email"
    return "phone" if customer.phone else "chat"


def handoff_facts(*, session: Session, handoffs: list[tuple[int, int]]) -> dict[int, str]:
    """What the bot had gathered when each handoff was asked for, as one line for the queue and the
    chat page ("Complaint about: delivery · Order: CL-123456 · What happened: …"), by handoff id.
    `handoffs` are (handoff id, conversation id) pairs; a handoff with nothing gathered is left out."""
    wanted = dict(handoffs)
    if not wanted:
        return {}
    requested = session.scalars(
        select(InteractionEvent).where(
            InteractionEvent.conversation_id.in_(set(wanted.values())),
            InteractionEvent.kind == "handoff_requested",
        )
    )
    lines = {}
    for event in requested:
        handoff_id, facts = event.data.get("handoff_id"), event.data.get("facts")
        if handoff_id in wanted and isinstance(facts, dict) and facts:
            lines[handoff_id] = " · ".join(f"{label}: {value}" for label, value in facts.items())
    return lines


GIVEN_CONTACT = "callback_contact"  # the interaction that notes how a guest asked to be called back


def record_given_contact(*, session: Session, conversation: Conversation, kind: str, value: str) -> bool:
    """Note on the conversation's open callback the email address or phone number the customer gave
    for it in chat (unconfirmed: it is what they typed), or ("chat", "chat") for "answer me in this
    chat". False when no callback is open."""
    handoff = session.scalar(
        select(Handoff).where(
            Handoff.conversation_id == conversation.id,
            Handoff.status.in_((HandoffStatus.QUEUED, HandoffStatus.CLAIMED)),
            Handoff.mode == HANDOFF_CALLBACK,
        )
    )
    if handoff is None:
        return False
    log_interaction(
        session=session,
        customer=session.get_one(Customer, handoff.customer_id),
        conversation=conversation,
        kind=GIVEN_CONTACT,
        data={"handoff_id": handoff.id, "route": kind, "value": value},
    )
    session.flush()
    return True


def given_contact(*, session: Session, handoff_id: int) -> tuple[str, str] | None:
    """The (route, value) the customer gave in chat for this callback, the latest if several."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        return None
    noted = session.scalars(
        select(InteractionEvent)
        .where(
            InteractionEvent.conversation_id == handoff.conversation_id,
            InteractionEvent.kind == GIVEN_CONTACT,
        )
        .order_by(InteractionEvent.id.desc())
    )
    for event in noted:
        if event.data.get("handoff_id") == handoff_id:
            return str(event.data["route"]), str(event.data["value"])
    return None


def contact_routes(
    *, customer: Customer, channel: Channel, given: tuple[str, str] | None = None
) -> list[str]:
    """How a person can get back to the customer, in words for the queue: the channel they wrote on
    when it can reach them later (Telegram), an address or phone on file, otherwise this chat."""
    routes = []
    if given is not None and given[0] != "chat":  # what they asked for comes first
        routes.append(f"{given[0]} given in chat: {given[1]} (not confirmed)")
    if channel is Channel.TELEGRAM:
        routes.append("Telegram (write in this chat)")
    if customer.email:
        routes.append("email (confirmed)" if customer.email_verified_at else "email (not confirmed yet)")
    if customer.phone:
        routes.append("phone")
    if channel is Channel.WEB:
        routes.append("answer in this chat (they read it when they come back)")
    return routes or ["answer in this chat"]


def unattended(*, session: Session, now: datetime, unattended_seconds: float) -> list[int]:
    """Live handoffs waiting longer than `unattended_seconds` while no agent had the console open
    in that time."""
    since = now - timedelta(seconds=unattended_seconds)
    last_seen = session.scalar(
        select(func.max(Agent.last_seen_at)).where(
            Agent.active.is_(True), Agent.role.in_((Role.AGENT, Role.LEAD, Role.ADMIN))
        )
    )
    if last_seen is not None and last_seen >= since:
        return []
    return list(
        session.scalars(
            select(Handoff.id)
            .where(
                Handoff.status == HandoffStatus.QUEUED,
                Handoff.mode == HANDOFF_LIVE,
                Handoff.requested_at < since,
            )
            .order_by(Handoff.id)
        )
    )


def to_callback(*, session: Session, handoff_id: int, hours: BusinessHours, now: datetime) -> Handoff | None:
    """Turn a live handoff nobody can take into a callback case; the bot takes the conversation again.

    None if a person claimed it (or it ended) in the meantime.
    """
    handoff = session.get(Handoff, handoff_id, populate_existing=True)
    if handoff is None or handoff.status is not HandoffStatus.QUEUED or handoff.mode != HANDOFF_LIVE:
        return None
    handoff.mode, handoff.callback_by = HANDOFF_CALLBACK, callback_promise(hours=hours, now=now)
    conversation = session.get_one(Conversation, handoff.conversation_id)
    conversation.status = ConversationStatus.BOT
    log_interaction(
        session=session,
        customer=session.get_one(Customer, handoff.customer_id),
        conversation=conversation,
        kind="handoff_to_callback",
        data={"handoff_id": handoff.id, "callback_by": handoff.callback_by.isoformat()},
        now=now,
    )
    session.flush()
    return handoff
