"""`make_*` factories for CRM rows with sensible defaults; keyword arguments override them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import count
from typing import Any

from sqlalchemy.orm import Session

from bot.crm.models import (
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    Severity,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
_numbers = count(1)


def make_customer(session: Session, *, web_id: str | None = None, **fields: Any) -> Customer:
    n = next(_numbers)
    customer = Customer(**{"first_name": f"Test{n}", "last_name": "Customer", "created_at": NOW, **fields})
    if web_id:
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=web_id))
    session.add(customer)
    session.flush()
    return customer


def make_order(
    session: Session,
    customer: Customer,
    *,
    total: str | Decimal = "50.00",
    days_ago: float = 10,
    **fields: Any,
) -> Order:
    n = next(_numbers)
    order = Order(
        **{
            "number": f"T-{n:06d}",
            "customer_id": customer.id,
            "status": OrderStatus.DELIVERED,
            "total": Decimal(total),
            "placed_at": NOW - timedelta(days=days_ago),
            **fields,
        }
    )
    session.add(order)
    session.flush()
    return order


def make_complaint(session: Session, customer: Customer, *, days_ago: float = 10, **fields: Any) -> Complaint:
    created = NOW - timedelta(days=days_ago)
    complaint = Complaint(
        **{
            "customer_id": customer.id,
            "category": ComplaintCategory.DELIVERY,
            "severity": Severity.MEDIUM,
            "team": "logistics",
            "status": ComplaintStatus.CLOSED,
            "sla_due_at": created + timedelta(hours=24),
            "created_at": created,
            **fields,
        }
    )
    session.add(complaint)
    session.flush()
    return complaint


def make_refund(session: Session, order: Order, *, days_ago: float = 5, **fields: Any) -> Refund:
    refund = Refund(
        **{
            "order_id": order.id,
            "customer_id": order.customer_id,
            "amount": order.total,
            "status": RefundStatus.PAID,
            "requested_at": NOW - timedelta(days=days_ago),
            **fields,
        }
    )
    session.add(refund)
    session.flush()
    return refund
