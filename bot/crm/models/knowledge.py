"""What the CRM learns about customers over time: their segment's history, the nightly refresh,
and the spells in which they drift away."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow
from .enums import Segment


class SegmentChange(Base):
    """One move of a customer from one segment to another (from None: the first time it was computed)."""

    __tablename__ = "segment_change"
    __table_args__ = (Index("ix_segment_change_customer_id_changed_at", "customer_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    from_segment: Mapped[Segment | None] = mapped_column(enum_column(Segment))
    to_segment: Mapped[Segment] = mapped_column(enum_column(Segment))
    rule: Mapped[str] = mapped_column(String(24))  # why: bot.crm.segments.RULE_WORDS
    trigger: Mapped[str] = mapped_column(String(24))  # what recomputed it: nightly, orders, demo
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentRun(Base):
    """One nightly refresh of everybody's segment; one per day, so a restarted scheduler never
    runs it twice. Its MVC threshold serves the refresh of one customer until the next night."""

    __tablename__ = "segment_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)
    mvc_threshold: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    customers: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)


class DriftEpisode(Base):
    """One spell of a customer drifting away, what we did about it, and whether they came back.

    `key` names the customer and their last own activity when it began, so the daily sweep opens
    one episode per spell however often it runs; the action is a task for a person (`task_*`) or
    a check-in delivery (its status says whether the policy gate sent or skipped it, and why)."""

    __tablename__ = "drift_episode"
    __table_args__ = (Index("ix_drift_episode_customer_id_started_at", "customer_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)  # drift:customer:<id>:since:<date>
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    segment: Mapped[Segment] = mapped_column(enum_column(Segment))  # the segment when it began
    reason: Mapped[str] = mapped_column(String(24))  # the check-in's wording: bot.crm.drift.REASON_WORDS
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{"factor", "text"}]
    last_active_at: Mapped[datetime]  # the customer's own latest order or message when it began
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(16))  # task | checkin | not_chased
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    task_done_at: Mapped[datetime | None]
    task_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    task_note: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # came_back | lapsed
    came_back_by: Mapped[str | None] = mapped_column(String(16))  # order | message
