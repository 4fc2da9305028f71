"""What the CRM learns about customers over time: their segment's history and the nightly refresh."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Numeric, String
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
