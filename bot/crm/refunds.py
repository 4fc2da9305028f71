"""The refund policy, in one place: what may be refunded, and the refund request it creates."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Conversation, Customer, Order, OrderStatus, Refund, RefundStatus, utcnow
from bot.crm.queries import log_interaction

RETURN_WINDOW = timedelta(days=30)  # from delivery, as the FAQ promises
AUTO_APPROVE_UP_TO = Decimal("100.00")  # above this a person checks the request first


class Eligibility(str, enum.Enum):
    ELIGIBLE = "eligible"  # refund request created
    NEEDS_REVIEW = "needs_review"  # created, a person approves it
    NOT_DELIVERED = "not_delivered"  # still on its way: cancel or wait, no refund yet
    CANCELLED = "cancelled"  # never charged
    TOO_LATE = "too_late"  # outside the 30-day window (warranty may still apply)
    ALREADY = "already"  # a refund exists for this order


@dataclass(frozen=True)
class Decision:
    eligibility: Eligibility
    refund: Refund | None = None
    days_left: int | None = None


def check(*, session: Session, order: Order, now: datetime) -> Eligibility:
    """What the policy allows for this order, without changing anything."""
    existing = session.scalar(
        select(Refund.id).where(Refund.order_id == order.id, Refund.status != RefundStatus.REJECTED)
    )
    if existing is not None or order.status is OrderStatus.RETURNED:
        return Eligibility.ALREADY
    if order.status is OrderStatus.CANCELLED:
        return Eligibility.CANCELLED
    if order.status is not OrderStatus.DELIVERED or order.delivered_at is None:
        return Eligibility.NOT_DELIVERED
    if now - order.delivered_at > RETURN_WINDOW:
        return Eligibility.TOO_LATE
    return Eligibility.ELIGIBLE if order.total <= AUTO_APPROVE_UP_TO else Eligibility.NEEDS_REVIEW


def request_refund(
    *,
    session: Session,
    customer: Customer,
    order: Order,
    reason: str | None,
    conversation: Conversation | None = None,
    now: datetime | None = None,
) -> Decision:
    """Apply the policy; when it allows a refund, create the request."""
    now = now or utcnow()
    eligibility = check(session=session, order=order, now=now)
    refund = None
    if eligibility in (Eligibility.ELIGIBLE, Eligibility.NEEDS_REVIEW):
        refund = Refund(
            order_id=order.id,
            customer_id=customer.id,
            amount=order.total,
            reason=(reason or "")[:200] or None,
            status=RefundStatus.APPROVED if eligibility is Eligibility.ELIGIBLE else RefundStatus.REQUESTED,
            requested_at=now,
            decided_at=now if eligibility is Eligibility.ELIGIBLE else None,
        )
        session.add(refund)
        session.flush()
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="refund_requested",
        intent="request_refund",
        data={
            "order": order.number,
            "eligibility": eligibility.value,
            "refund_id": refund.id if refund else None,
        },
        now=now,
    )
    days_left = None
    if order.delivered_at is not None:
        days_left = max(0, (order.delivered_at + RETURN_WINDOW - now).days)
    return Decision(eligibility=eligibility, refund=refund, days_left=days_left)
