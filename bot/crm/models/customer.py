"""Customers, how to reach them, and what they agreed to."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, enum_column, utcnow
from .enums import Channel, ConsentPurpose, CountryCode, Segment, Temperament


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    # Set when the customer confirmed the address (a link mailed to it); only then does it get mail.
    email_verified_at: Mapped[datetime | None]
    phone: Mapped[str | None] = mapped_column(String(32))
    birthday: Mapped[date | None] = mapped_column(Date)
    # The delivery address, as bot/crm/addresses.py checks it; a change is audited with the old one.
    address_line1: Mapped[str | None] = mapped_column(String(100))
    address_line2: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(80))
    country: Mapped[CountryCode | None] = mapped_column(enum_column(CountryCode, length=2))
    address_updated_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str] = mapped_column(String(8), default="en")
    segment: Mapped[Segment] = mapped_column(enum_column(Segment), default=Segment.STANDARD, index=True)
    temperament: Mapped[Temperament] = mapped_column(
        enum_column(Temperament), default=Temperament.UNKNOWN, index=True
    )
    churn_risk: Mapped[float] = mapped_column(Float, default=0.0)
    # Why (bot/crm/churn.py): [{"factor": "overdue", "weight": 0.35, "text": "no order for 74 days, ..."}]
    churn_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    churn_scored_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    erased_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None] = mapped_column(index=True)
    segment_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The shop's own id (bot/crm/ingest.py upserts by it) and the time of its newest event applied.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    external_updated_at: Mapped[datetime | None]

    identities: Mapped[list[ChannelIdentity]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )
    consents: Mapped[list[Consent]] = relationship(back_populates="customer", cascade="all, delete-orphan")

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or f"customer #{self.id}"


class ChannelIdentity(Base):
    """One way to reach a customer: a Telegram chat, a web visitor id."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(160))
    language: Mapped[str | None] = mapped_column(String(8))
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    unreachable_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship(back_populates="identities")

    @property
    def sender_id(self) -> str:
        """The Rasa conversation id for this identity, `<channel>:<id>`."""
        return f"{self.channel.value}:{self.external_id}"


class Consent(Base):
    """The current consent of one customer for one purpose; every change is also audited."""

    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("customer_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[ConsentPurpose] = mapped_column(enum_column(ConsentPurpose))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))  # e.g. "telegram:chat", "signup", "console:agent:3"
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="consents")


Index("ix_customer_birthday", Customer.birthday)
