"""Which sent messages the customer answered within the reply window (campaign reply figures)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import churn
from bot.crm.clock import aggregate_time
from bot.crm.models import (
    Conversation,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
)

REPLY_WINDOW = timedelta(hours=48)


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
