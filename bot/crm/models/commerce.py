"""What customers buy: the catalogue, orders, subscriptions and refunds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, enum_column, utcnow
from .enums import OrderStatus, RefundStatus, SubscriptionStatus

Money = Numeric(10, 2)


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(60))
    price: Mapped[Decimal] = mapped_column(Money)
    is_plan: Mapped[bool] = mapped_column(Boolean, default=False)  # a subscription plan
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    launched_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The shop's own id (bot/crm/ingest.py upserts by it) and the time of its newest event applied.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    external_updated_at: Mapped[datetime | None]


class Order(Base):
    __tablename__ = "order"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # what customers see, e.g. CL-104233
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    status: Mapped[OrderStatus] = mapped_column(enum_column(OrderStatus))
    total: Mapped[Decimal] = mapped_column(Money)
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_code: Mapped[str | None] = mapped_column(String(40))
    placed_at: Mapped[datetime] = mapped_column(index=True)
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    expected_at: Mapped[datetime | None]
    # Paid is a fact beside the status, not a status: the bot's order states end at placed (unpaid
    # or paid, it waits for shipping), shipped, delivered, cancelled, returned.
    paid_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    external_updated_at: Mapped[datetime | None]

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", cascade="all, delete-orphan")


class OrderLine(Base):
    __tablename__ = "order_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class Subscription(Base):
    """A membership plan the customer pays for monthly; what `cancel_subscription` is about."""

    __tablename__ = "subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    status: Mapped[SubscriptionStatus] = mapped_column(enum_column(SubscriptionStatus))
    monthly_price: Mapped[Decimal] = mapped_column(Money)
    started_at: Mapped[datetime]
    cancel_requested_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    renewed_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    external_updated_at: Mapped[datetime | None]

    product: Mapped[Product] = relationship()


class Refund(Base):
    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[RefundStatus] = mapped_column(enum_column(RefundStatus))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    external_updated_at: Mapped[datetime | None]
