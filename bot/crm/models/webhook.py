"""Outbound webhooks: an admin's subscriptions and the durable outbox of their deliveries."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow


class WebhookStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its first try or its next retry
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retried for a day without a 2xx; an admin may resend it


class WebhookSubscription(Base):
    """A URL that hears about the events it chose. The secret signs each POST; it is kept as is
    (not hashed) because signing needs it, and it is shown to the admin only once."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(80))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event for one subscription: written in the transaction of the event, sent later by the
    scheduler in id order per subscription."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscription.id", ondelete="CASCADE"), index=True
    )
    # Whom the event is about, so that erasing a customer deletes their deliveries too.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer.id", ondelete="SET NULL"), index=True
    )
    event: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # the receiver's dedup key
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[WebhookStatus] = mapped_column(enum_column(WebhookStatus), default=WebhookStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
