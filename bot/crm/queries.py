"""Look-ups and writes every part of CareLoop shares. The caller owns the session."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, SQLColumnExpression, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    AuditLog,
    Channel,
    ChannelIdentity,
    Consent,
    ConsentPurpose,
    Conversation,
    Customer,
    InteractionEvent,
    utcnow,
)

MAX_EXTERNAL_ID = 128

_Row = TypeVar("_Row", bound=tuple[Any, ...])


class OnlyCustomers:
    """Narrows a query to the customers given, or leaves it whole when they are None (everybody)."""

    def __init__(self, customer_ids: Collection[int] | None) -> None:
        self.customer_ids = None if customer_ids is None else list(customer_ids)

    def __call__(self, column: SQLColumnExpression[int], statement: Select[_Row]) -> Select[_Row]:
        """`statement` kept to the rows whose `column` is one of the customers."""
        if self.customer_ids is None:
            return statement
        return statement.where(column.in_(self.customer_ids))


class InvalidSenderId(ValueError):
    """A conversation id that is not `<channel>:<id>` with a known channel."""


def parse_sender_id(sender_id: str) -> tuple[Channel, str]:
    """Split a Rasa sender id such as `telegram:123` into its channel and the channel's own id."""
    channel_name, sep, external_id = (sender_id or "").partition(":")
    try:
        channel = Channel(channel_name)
    except ValueError:
        raise InvalidSenderId(f"unknown channel in sender id {sender_id!r}") from None
    if not sep or not external_id or len(external_id) > MAX_EXTERNAL_ID or not external_id.isprintable():
        raise InvalidSenderId(f"malformed sender id {sender_id!r}")
    return channel, external_id


def find_identity(*, session: Session, sender_id: str) -> ChannelIdentity | None:
    """The channel identity behind a sender id, if the CRM knows it."""
    channel, external_id = parse_sender_id(sender_id)
    return session.scalar(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
        )
    )


def find_customer(*, session: Session, sender_id: str) -> Customer | None:
    """The customer behind a sender id, or None for a stranger."""
    identity = find_identity(session=session, sender_id=sender_id)
    return identity.customer if identity else None


def get_or_create_customer(
    *,
    session: Session,
    sender_id: str,
    first_name: str | None = None,
    last_name: str | None = None,
    language: str | None = None,
    now: datetime | None = None,
) -> tuple[Customer, bool]:
    """The customer behind `sender_id`, created on first contact. Returns (customer, created)."""
    existing = find_customer(session=session, sender_id=sender_id)
    if existing is not None:
        return existing, False
    channel, external_id = parse_sender_id(sender_id)
    now = now or utcnow()
    customer = Customer(first_name=first_name, last_name=last_name, language=language or "en", created_at=now)
    customer.identities.append(
        ChannelIdentity(
            channel=channel,
            external_id=external_id,
            display_name=" ".join(p for p in (first_name, last_name) if p) or None,
            language=language,
            created_at=now,
            last_seen_at=now,
        )
    )
    # Talking to us is consent to be answered; marketing needs an explicit opt-in.
    customer.consents.append(
        Consent(
            purpose=ConsentPurpose.SERVICE,
            granted=True,
            source=f"{channel.value}:first_contact",
            changed_at=now,
        )
    )
    customer.consents.append(
        Consent(
            purpose=ConsentPurpose.MARKETING,
            granted=False,
            source=f"{channel.value}:first_contact",
            changed_at=now,
        )
    )
    session.add(customer)
    session.flush()
    record_audit(
        session=session,
        actor="bot",
        action="customer_created",
        entity="customer",
        entity_id=customer.id,
        details={"channel": channel.value},
    )
    return customer, True


def ensure_conversation(*, session: Session, sender_id: str, customer: Customer) -> Conversation:
    """The conversation row for `sender_id`, created on its first message."""
    conversation = session.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
    if conversation is None:
        channel, _ = parse_sender_id(sender_id)
        conversation = Conversation(sender_id=sender_id, customer_id=customer.id, channel=channel)
        session.add(conversation)
        session.flush()
    return conversation


def consent_of(*, session: Session, customer_id: int, purpose: ConsentPurpose) -> bool:
    """Whether the customer currently agrees to messages for `purpose`.

    With no record, service messages are allowed (the customer talked to us) and marketing is not.
    """
    granted = session.scalar(
        select(Consent.granted).where(Consent.customer_id == customer_id, Consent.purpose == purpose)
    )
    return bool(granted) if granted is not None else purpose is ConsentPurpose.SERVICE


def started_by_us(intent: str | None) -> bool:
    """Whether a turn was started by us (a scheduler-triggered EXTERNAL_* intent), not the customer."""
    return intent is not None and intent.startswith("EXTERNAL_")


def log_interaction(
    *,
    session: Session,
    customer: Customer,
    kind: str,
    conversation: Conversation | None = None,
    intent: str | None = None,
    confidence: float | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> InteractionEvent:
    """Record a business event and, when the customer started the turn, their last-contact time."""
    now = now or utcnow()
    event = InteractionEvent(
        customer_id=customer.id,
        conversation_id=conversation.id if conversation else None,
        kind=kind,
        intent=intent,
        confidence=confidence,
        data=data or {},
        created_at=now,
    )
    session.add(event)
    if not started_by_us(intent):  # our own check-in is not the customer getting in touch
        customer.last_contact_at = now
    if conversation is not None:
        conversation.last_message_at = now
    session.flush()
    return event


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log: who changed what."""
    session.add(
        AuditLog(actor=actor, action=action, entity=entity, entity_id=entity_id, details=details or {})
    )
