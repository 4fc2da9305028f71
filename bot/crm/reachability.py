"""Whether and where a customer can be reached: channel identities that still accept messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.models import Channel, ChannelIdentity, Customer
from bot.crm.queries import find_identity, record_audit


def reachable(*, session: Session, customer: Customer) -> bool:
    """The customer has at least one identity a message can still go to."""
    if not customer.reachable:
        return False
    return bool(
        session.scalar(
            select(func.count(ChannelIdentity.id)).where(
                ChannelIdentity.customer_id == customer.id, ChannelIdentity.reachable.is_(True)
            )
        )
    )


def mark_unreachable(*, session: Session, sender_id: str, reason: str) -> None:
    """The channel refused delivery for good (e.g. the bot was blocked): stop trying this identity."""
    identity = find_identity(session=session, sender_id=sender_id)
    if identity is None:
        return
    identity.reachable = False
    identity.unreachable_reason = reason[:200]
    customer = identity.customer
    customer.reachable = any(i.reachable for i in customer.identities)
    record_audit(
        session=session,
        actor="gateway",
        action="identity_unreachable",
        entity="channel_identity",
        entity_id=identity.id,
        details={"channel": identity.channel.value},
    )


def best_identity(
    *, session: Session, customer_id: int, channels: Sequence[Channel]
) -> ChannelIdentity | None:
    """The customer's most recently used identity that can be reached on one of `channels`."""
    candidates = session.scalars(
        select(ChannelIdentity).where(
            ChannelIdentity.customer_id == customer_id,
            ChannelIdentity.reachable.is_(True),
            ChannelIdentity.channel.in_(list(channels)),
        )
    ).all()
    if not candidates:
        return None

    def recency(identity: ChannelIdentity) -> tuple[datetime, datetime]:
        return (identity.last_seen_at or identity.created_at, identity.created_at)

    return max(candidates, key=recency)
