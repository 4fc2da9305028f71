"""Caring for customers: complaints, retention saves, handoffs to people, surveys."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, enum_column, utcnow
from .enums import (
    ComplaintCategory,
    ComplaintStatus,
    HandoffStatus,
    LeaveReason,
    OfferKind,
    Remedy,
    RetentionOutcome,
    Segment,
    Severity,
)


class Complaint(Base):
    """A complaint case, worked by its team from filing to the customer's confirmation.

    `version` counts every change (SQLAlchemy refuses an UPDATE of a row changed since it was
    read), and a console form carries the version it was shown with: a stale form is refused."""

    __tablename__ = "complaint"
    __table_args__ = (Index("ix_complaint_status_sla_due_at", "status", "sla_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id", ondelete="SET NULL"), index=True)
    category: Mapped[ComplaintCategory] = mapped_column(enum_column(ComplaintCategory))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity))
    team: Mapped[str] = mapped_column(String(40))  # the owning team, routed from the category
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ComplaintStatus] = mapped_column(enum_column(ComplaintStatus))
    sla_due_at: Mapped[datetime]  # the time promised to the customer (the scheduler may move it once)
    sla_started_at: Mapped[datetime | None]  # when that promise was made: filing or reopening
    resolution: Mapped[str | None] = mapped_column(Text)
    customer_told: Mapped[bool] = mapped_column(Boolean, default=False)  # closed loop: told what changed
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    resolved_at: Mapped[datetime | None]
    followup_due_at: Mapped[datetime | None]
    followup_done_at: Mapped[datetime | None]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 1: reopened, on top
    first_response_at: Mapped[datetime | None]  # first taken, asked or resolved by a person
    remedy: Mapped[Remedy | None] = mapped_column(enum_column(Remedy))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id", ondelete="SET NULL"))
    credit_amount: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class Offer(Base):
    """One entry of the retention offer catalogue: what may be offered for which reason and segment."""

    __tablename__ = "offer"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    kind: Mapped[OfferKind] = mapped_column(enum_column(OfferKind))
    reason: Mapped[LeaveReason] = mapped_column(enum_column(LeaveReason), index=True)
    segment: Mapped[Segment | None] = mapped_column(enum_column(Segment))  # None: any segment
    value: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # percent or amount, by kind
    rank: Mapped[int] = mapped_column(Integer, default=1)  # first attempt, second attempt, …
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RetentionAttempt(Base):
    __tablename__ = "retention_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="SET NULL"), index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscription.id", ondelete="SET NULL"))
    reason: Mapped[LeaveReason | None] = mapped_column(enum_column(LeaveReason))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offer.id", ondelete="SET NULL"))
    attempt_no: Mapped[int] = mapped_column(Integer, default=1)
    outcome: Mapped[RetentionOutcome] = mapped_column(enum_column(RetentionOutcome))
    exit_answer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    decided_at: Mapped[datetime | None]

    offer: Mapped[Offer | None] = relationship()


HANDOFF_LIVE, HANDOFF_CALLBACK = "live", "callback"


class Handoff(Base):
    __tablename__ = "handoff"
    __table_args__ = (Index("ix_handoff_status_priority", "status", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(60))
    priority: Mapped[int] = mapped_column(Integer)  # higher is more urgent
    status: Mapped[HandoffStatus] = mapped_column(enum_column(HandoffStatus))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"), index=True)
    resolution: Mapped[str | None] = mapped_column(Text)
    # "live": a person takes over now (the bot is paused); "callback": filed for when someone is there.
    mode: Mapped[str] = mapped_column(String(10), default=HANDOFF_LIVE, server_default=HANDOFF_LIVE)
    callback_by: Mapped[datetime | None]  # the promise made to the customer in callback mode
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class Survey(Base):
    """A CSAT answer (1–5) with an optional comment, after a resolution or a handoff."""

    __tablename__ = "survey"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="SET NULL"), index=True
    )
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaint.id", ondelete="SET NULL"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoff.id", ondelete="SET NULL"))
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
