"""The transcript: every message in and out with its delivery status, the inbox of messages the bot
has not answered yet, and which customer a channel identity belongs to. The caller owns the session."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm.models import (
    AuditLog,
    Author,
    Channel,
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    InboundStatus,
    Message,
    OutboundStatus,
    utcnow,
)
from bot.crm.queries import ensure_conversation, find_identity, get_or_create_customer, record_audit

MAX_ERROR = 300
HOLDING = "holding"  # payload kind of the gateway's "I'll answer as soon as I can" message
PROACTIVE_SENT = "proactive_sent"  # audit action that remembers an idempotency key


@dataclass(frozen=True)
class Profile:
    """What a channel tells us about the person writing (Telegram's names and language)."""

    first_name: str | None = None
    last_name: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class StoredInbound:
    message: Message
    conversation: Conversation
    customer: Customer
    duplicate: bool  # the channel delivered this message before; it is not stored twice


def store_inbound(
    *,
    session: Session,
    sender_id: str,
    text: str,
    payload: dict[str, Any] | None = None,
    external_id: str | None = None,
    profile: Profile | None = None,
    now: datetime | None = None,
) -> StoredInbound:
    """Store a customer's message as received, creating the customer on first contact."""
    now = now or utcnow()
    profile = profile or Profile()
    customer, created = _customer_for(session=session, sender_id=sender_id, profile=profile, now=now)
    if created:  # Rasa is told, so that the greeting can welcome a newcomer as one
        payload = {**(payload or {}), "first_contact": True}
    conversation = ensure_conversation(session=session, sender_id=sender_id, customer=customer)
    if external_id is not None:
        earlier = session.scalar(
            select(Message).where(
                Message.conversation_id == conversation.id,
                Message.direction == Direction.INBOUND,
                Message.external_id == external_id,
            )
        )
        if earlier is not None:
            return StoredInbound(earlier, conversation, customer, duplicate=True)
    message = Message(
        conversation_id=conversation.id,
        direction=Direction.INBOUND,
        author=Author.CUSTOMER,
        text=text,
        payload=payload,
        external_id=external_id,
        delivery_status=InboundStatus.RECEIVED,
        created_at=now,
    )
    session.add(message)
    customer.last_contact_at = now
    conversation.last_message_at = now
    session.flush()
    return StoredInbound(message, conversation, customer, duplicate=False)


def _customer_for(
    *, session: Session, sender_id: str, profile: Profile, now: datetime
) -> tuple[Customer, bool]:
    identity = find_identity(session=session, sender_id=sender_id)
    if identity is None:
        return get_or_create_customer(
            session=session,
            sender_id=sender_id,
            first_name=profile.first_name,
            last_name=profile.last_name,
            language=profile.language,
            now=now,
        )
    _refresh_identity(identity, profile, now)
    return identity.customer, False


def _refresh_identity(identity: ChannelIdentity, profile: Profile, now: datetime) -> None:
    """Keep what the channel says current; names the CRM already holds are not overwritten."""
    identity.last_seen_at = now
    name = " ".join(p for p in (profile.first_name, profile.last_name) if p)
    if name:
        identity.display_name = name[:160]
    if profile.language:
        identity.language = profile.language[:8]
    customer = identity.customer
    if not customer.first_name and profile.first_name:
        customer.first_name, customer.last_name = profile.first_name, profile.last_name
    if not identity.reachable:  # they wrote to us, so they can be reached again (e.g. unblocked)
        identity.reachable, identity.unreachable_reason = True, None
    customer.reachable = True


def find_conversation(*, session: Session, sender_id: str) -> Conversation | None:
    return session.scalar(select(Conversation).where(Conversation.sender_id == sender_id))


def pending_inbound(*, session: Session, conversation_id: int) -> list[Message]:
    """The conversation's messages the bot has not answered yet, oldest first."""
    return list(
        session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.INBOUND,
                Message.delivery_status == InboundStatus.RECEIVED,
            )
            .order_by(Message.id)
        )
    )


def conversations_with_pending(*, session: Session, limit: int = 100) -> list[int]:
    """Conversations with unanswered messages, the longest-waiting first."""
    oldest = func.min(Message.id)
    rows = session.execute(
        select(Message.conversation_id, oldest)
        .where(Message.direction == Direction.INBOUND, Message.delivery_status == InboundStatus.RECEIVED)
        .group_by(Message.conversation_id)
        .order_by(oldest)
        .limit(limit)
    )
    return [conversation_id for conversation_id, _ in rows]


def mark_processed(*, session: Session, message_id: int) -> None:
    """The bot has answered (or deliberately stayed silent on) this inbound message."""
    message = session.get_one(Message, message_id)
    message.delivery_status = InboundStatus.PROCESSED
    message.attempts += 1
    message.error = None


def store_outbound(
    *,
    session: Session,
    conversation_id: int,
    author: Author,
    text: str | None,
    payload: dict[str, Any] | None = None,
    agent_id: int | None = None,
    now: datetime | None = None,
) -> Message:
    """Store a message to the customer, queued until a channel delivers it."""
    now = now or utcnow()
    message = Message(
        conversation_id=conversation_id,
        direction=Direction.OUTBOUND,
        author=author,
        agent_id=agent_id,
        text=text,
        payload=payload,
        delivery_status=OutboundStatus.QUEUED,
        created_at=now,
    )
    session.add(message)
    session.get_one(Conversation, conversation_id).last_message_at = now
    session.flush()
    return message


def record_delivery(
    *,
    session: Session,
    message_id: int,
    status: OutboundStatus,
    external_id: str | None = None,
    error: str | None = None,
    attempted: bool = True,
    now: datetime | None = None,
) -> Message:
    """Record what happened when a channel tried to deliver an outbound message."""
    message = session.get_one(Message, message_id)
    # The customer's device may confirm a message before the sender has recorded sending it.
    if not (message.delivery_status == OutboundStatus.DELIVERED and status == OutboundStatus.SENT):
        message.delivery_status = status
    message.attempts += 1 if attempted else 0
    message.error = error[:MAX_ERROR] if error else None
    if external_id is not None:
        message.external_id = external_id[:64]
    if status in (OutboundStatus.SENT, OutboundStatus.DELIVERED) and message.sent_at is None:
        message.sent_at = now or utcnow()
    return message


def mark_delivered(
    *, session: Session, conversation_id: int, message_ids: Collection[int], now: datetime | None = None
) -> int:
    """The customer's device confirmed these outbound messages; return how many changed."""
    if not message_ids:
        return 0
    now = now or utcnow()
    result = session.execute(
        update(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND,
            Message.id.in_(list(message_ids)),
            Message.delivery_status.in_([OutboundStatus.QUEUED, OutboundStatus.SENT]),
        )
        .values(delivery_status=OutboundStatus.DELIVERED, sent_at=func.coalesce(Message.sent_at, now))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def undelivered_outbound(
    *, session: Session, conversation_id: int, unconfirmed: bool = False, limit: int = 200
) -> list[Message]:
    """Outbound messages still waiting for the customer (e.g. a web visitor who was away);
    `unconfirmed`: also those sent but not confirmed by the customer's device."""
    statuses = [OutboundStatus.QUEUED, OutboundStatus.SENT] if unconfirmed else [OutboundStatus.QUEUED]
    return list(
        session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.OUTBOUND,
                Message.delivery_status.in_(statuses),
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )


def retryable_outbound(
    *, session: Session, channel: Channel, before: datetime, max_attempts: int, limit: int = 100
) -> list[Message]:
    """Queued outbound messages on `channel` created before `before` (so not being sent right now)
    that have not used up their attempts."""
    return list(
        session.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == channel,
                Message.direction == Direction.OUTBOUND,
                Message.delivery_status == OutboundStatus.QUEUED,
                Message.attempts < max_attempts,
                Message.created_at < before,
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )


def recent_messages(*, session: Session, conversation_id: int, limit: int = 200) -> list[Message]:
    """The last `limit` lines of a conversation, oldest first."""
    newest = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )
    return newest[::-1]


def holding_sent_since_oldest_pending(*, session: Session, conversation_id: int) -> bool:
    """Whether the customer was already told we will answer later, since they last got an answer."""
    oldest = session.scalar(
        select(func.min(Message.id)).where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.INBOUND,
            Message.delivery_status == InboundStatus.RECEIVED,
        )
    )
    if oldest is None:
        return False
    later = session.scalars(
        select(Message.payload).where(
            Message.conversation_id == conversation_id,
            Message.author == Author.SYSTEM,
            Message.id > oldest,
        )
    )
    return any((payload or {}).get("kind") == HOLDING for payload in later)


# Which offered buttons may still be clicked (see `offered_button`).
LIVE_MENUS = 3  # the bot's latest messages with buttons in the conversation
LIVE_WINDOW = 20  # messages (either way) after the one with the button
LIVE_FOR = timedelta(hours=24)


def offered_button(
    *, session: Session, conversation_id: int, message_id: int, index: int, now: datetime | None = None
) -> dict[str, str] | None:
    """The button {title, payload} of one of the bot's messages of this conversation, if it may
    still be clicked.

    A click is an answer to the conversation as it stands, so only buttons of recent messages count,
    the way a person would take "yes" as an answer to one of their last questions, not to one from
    an hour of talk ago. A button is live while its message is among the bot's last `LIVE_MENUS`
    messages with buttons (a turn can end with two menus, and a click may cross a newer reply on its
    way), fewer than `LIVE_WINDOW` messages came after it (the talk has not moved on: the issue's
    click 54 messages back), and it is younger than `LIVE_FOR` (a campaign or check-in read in the
    evening can be answered the next morning; days later its offer and context are gone). Any other
    click is stale: the customer is asked to type what they need.
    """
    message = session.get(Message, message_id)
    if (
        message is None
        or message.conversation_id != conversation_id
        or message.direction != Direction.OUTBOUND
    ):
        return None
    buttons = (message.payload or {}).get("buttons") or []
    if not 0 <= index < len(buttons) or not _still_live(session, message, now or utcnow()):
        return None
    button = buttons[index]
    return {"title": str(button.get("title", "")), "payload": str(button.get("payload", ""))}


def _still_live(session: Session, message: Message, now: datetime) -> bool:
    if message.created_at <= now - LIVE_FOR:
        return False
    later = session.execute(
        select(Message.direction, Message.payload)
        .where(Message.conversation_id == message.conversation_id, Message.id > message.id)
        .order_by(Message.id)
        .limit(LIVE_WINDOW)
    ).all()
    newer_menus = [
        1
        for direction, payload in later
        if direction == Direction.OUTBOUND and (payload or {}).get("buttons")
    ]
    return len(later) < LIVE_WINDOW and len(newer_menus) < LIVE_MENUS


def link_identity(
    *, session: Session, sender_id: str, customer_id: int, profile: Profile | None = None
) -> ChannelIdentity:
    """Attach the identity behind `sender_id` (and its conversation) to an existing customer."""
    customer = session.get_one(Customer, customer_id)
    identity = find_identity(session=session, sender_id=sender_id)
    previous = identity.customer_id if identity else None
    if identity is None:
        channel = Channel(sender_id.partition(":")[0])
        identity = ChannelIdentity(channel=channel, external_id=sender_id.partition(":")[2])
        customer.identities.append(identity)
    elif identity.customer_id != customer.id:
        identity.customer = customer
    _refresh_identity(identity, profile or Profile(), utcnow())
    session.flush()
    conversation = find_conversation(session=session, sender_id=sender_id)
    if conversation is not None:
        conversation.customer_id = customer.id
    record_audit(
        session=session,
        actor="gateway",
        action="identity_linked",
        entity="customer",
        entity_id=customer.id,
        details={"channel": identity.channel.value, "previous_customer_id": previous},
    )
    return identity


def proactive_result(*, session: Session, customer_id: int, idempotency_key: str) -> dict[str, Any] | None:
    """What an earlier proactive request with this key did ({conversation_id, message_ids, …})."""
    entries = session.scalars(
        select(AuditLog.details).where(
            AuditLog.entity == "customer",
            AuditLog.entity_id == customer_id,
            AuditLog.action == PROACTIVE_SENT,
        )
    )
    for details in entries:
        if details.get("idempotency_key") == idempotency_key:
            return dict(details)
    return None


def record_proactive(
    *,
    session: Session,
    customer_id: int,
    conversation_id: int,
    intent: str,
    idempotency_key: str | None,
    message_ids: list[int],
    actor: str = "internal",
) -> None:
    """Remember a proactive request (and its key, so a retry sends nothing twice)."""
    record_audit(
        session=session,
        actor=actor,
        action=PROACTIVE_SENT,
        entity="customer",
        entity_id=customer_id,
        details={
            "idempotency_key": idempotency_key,
            "intent": intent,
            "conversation_id": conversation_id,
            "message_ids": message_ids,
        },
    )
