"""Reaching out: campaigns and the delivery of every proactive message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow
from .enums import CampaignStatus, DeliveryStatus, OutreachKind


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # filter definition
    message: Mapped[str] = mapped_column(Text)  # with {first_name}-style placeholders
    buttons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # once-at or recurring rule
    status: Mapped[CampaignStatus] = mapped_column(enum_column(CampaignStatus), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """One proactive message to one customer; the idempotency key makes sending it exactly-once."""

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_status_scheduled_for", "status", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[OutreachKind] = mapped_column(enum_column(OutreachKind))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaint.id", ondelete="SET NULL"))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # entities for the EXTERNAL_* intent
    attempts: Mapped[int] = mapped_column(default=0)
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(String(300))
    scheduled_for: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
