"""Value segments from order data: MVC, MCC, BZ or standard (docs/architecture.md: they differ in value).

The rules, applied in this order:
- **BZ** (below zero): serving the customer cost more than they brought in the last 12 months —
  gross margin on net spend minus a handling cost per complaint and per refund is negative — and
  there were at least two such incidents (a new customer with one bad parcel is not BZ).
- **MVC** (most valuable): net spend over the last 12 months puts them in the top 20% of paying
  customers (ties at the threshold are all MVC: the 80:20 rule, not a quota).
- **MCC** (most growable): spend is rising (last 6 months ≥ 1.5 × the 6 months before, with at
  least three recent orders), or they are young (first order within 180 days) and frequent (three or
  more orders in the last 90 days).
- otherwise **standard**.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.crm import webhooks
from bot.crm.models import Complaint, Customer, Order, OrderStatus, Refund, RefundStatus, Segment

ZERO = Decimal("0")
CENT = Decimal("0.01")
COUNTED_ORDER_STATUSES = (OrderStatus.PLACED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


@dataclass(frozen=True)
class SegmentRules:
    mvc_share: float = 0.20
    gross_margin: Decimal = Decimal("0.30")
    complaint_cost: Decimal = Decimal("25")
    refund_cost: Decimal = Decimal("10")
    bz_min_incidents: int = 2
    growth_ratio: Decimal = Decimal("1.5")
    growth_min_recent_orders: int = 3
    young_days: int = 180
    frequent_orders_90d: int = 3


RULES = SegmentRules()


@dataclass(frozen=True)
class CustomerStats:
    """What segmentation needs to know about one customer, as of one moment."""

    customer_id: int
    spend_12m: Decimal = ZERO  # orders that were not cancelled or returned
    refunded_12m: Decimal = ZERO
    spend_recent_6m: Decimal = ZERO
    spend_prior_6m: Decimal = ZERO
    orders_recent_6m: int = 0
    orders_90d: int = 0
    complaints_12m: int = 0
    refunds_12m: int = 0
    first_order_at: datetime | None = None

    @property
    def value_12m(self) -> Decimal:
        return self.spend_12m - self.refunded_12m


def contribution(stats: CustomerStats, rules: SegmentRules = RULES) -> Decimal:
    """Gross margin on 12-month value minus the cost of serving complaints and refunds."""
    return (
        rules.gross_margin * stats.value_12m
        - rules.complaint_cost * stats.complaints_12m
        - rules.refund_cost * stats.refunds_12m
    )


def mvc_threshold(values: Iterable[Decimal], rules: SegmentRules = RULES) -> Decimal | None:
    """The 12-month value a customer needs to be MVC, or None when nobody paid anything."""
    paying = sorted((v for v in values if v > ZERO), reverse=True)
    if not paying:
        return None
    top = max(1, math.ceil(len(paying) * rules.mvc_share))
    return paying[top - 1]


def classify(
    stats: CustomerStats, threshold: Decimal | None, now: datetime, rules: SegmentRules = RULES
) -> Segment:
    """The segment of one customer, given the population's MVC threshold."""
    incidents = stats.complaints_12m + stats.refunds_12m
    if contribution(stats, rules) < ZERO and incidents >= rules.bz_min_incidents:
        return Segment.BZ
    if threshold is not None and stats.value_12m >= threshold and stats.value_12m > ZERO:
        return Segment.MVC
    if _is_growing(stats, rules) or _is_young_and_frequent(stats, now, rules):
        return Segment.MCC
    return Segment.STANDARD


def _is_growing(stats: CustomerStats, rules: SegmentRules) -> bool:
    return (
        stats.orders_recent_6m >= rules.growth_min_recent_orders
        and stats.spend_prior_6m > ZERO
        and stats.spend_recent_6m >= rules.growth_ratio * stats.spend_prior_6m
    )


def _is_young_and_frequent(stats: CustomerStats, now: datetime, rules: SegmentRules) -> bool:
    if stats.first_order_at is None:
        return False
    young = now - stats.first_order_at <= timedelta(days=rules.young_days)
    return young and stats.orders_90d >= rules.frequent_orders_90d


def collect_stats(*, session: Session, now: datetime) -> list[CustomerStats]:
    """Aggregate orders, refunds and complaints per customer, in three queries."""
    year_ago, half_year_ago, quarter_ago = (now - timedelta(days=d) for d in (365, 182, 90))
    counted = Order.status.in_(COUNTED_ORDER_STATUSES)

    def spend_between(start: datetime, end: datetime):  # type: ignore[no-untyped-def]
        inside = counted & (Order.placed_at >= start) & (Order.placed_at < end)
        return func.coalesce(func.sum(case((inside, Order.total), else_=0)), 0)

    def count_since(start: datetime):  # type: ignore[no-untyped-def]
        return func.sum(case((counted & (Order.placed_at >= start) & (Order.placed_at <= now), 1), else_=0))

    order_rows = session.execute(
        select(
            Order.customer_id,
            spend_between(year_ago, now + timedelta(microseconds=1)),
            spend_between(half_year_ago, now + timedelta(microseconds=1)),
            spend_between(year_ago, half_year_ago),
            count_since(half_year_ago),
            count_since(quarter_ago),
            func.min(case((Order.placed_at <= now, Order.placed_at), else_=None)),
        ).group_by(Order.customer_id)
    ).all()
    refund_rows = dict(
        (cid, (_money(amount), count))
        for cid, amount, count in session.execute(
            select(Refund.customer_id, func.sum(Refund.amount), func.count(Refund.id))
            .where(Refund.requested_at >= year_ago, Refund.requested_at <= now)
            .where(Refund.status != RefundStatus.REJECTED)
            .group_by(Refund.customer_id)
        )
    )
    complaint_counts = dict(
        session.execute(
            select(Complaint.customer_id, func.count(Complaint.id))
            .where(Complaint.created_at >= year_ago, Complaint.created_at <= now)
            .group_by(Complaint.customer_id)
        ).all()
    )
    by_customer = {
        cid: CustomerStats(
            customer_id=cid,
            spend_12m=_money(s12),
            spend_recent_6m=_money(s6),
            spend_prior_6m=_money(sp6),
            orders_recent_6m=int(o6 or 0),
            orders_90d=int(o90 or 0),
            first_order_at=_aware(first),
        )
        for cid, s12, s6, sp6, o6, o90, first in order_rows
    }
    customer_ids = session.scalars(select(Customer.id).where(Customer.erased_at.is_(None))).all()
    stats = []
    for cid in customer_ids:
        base = by_customer.get(cid, CustomerStats(customer_id=cid))
        refunded, refunds = refund_rows.get(cid, (ZERO, 0))
        stats.append(
            CustomerStats(
                **{
                    **base.__dict__,
                    "refunded_12m": refunded,
                    "refunds_12m": refunds,
                    "complaints_12m": complaint_counts.get(cid, 0),
                }
            )
        )
    return stats


def assign_segments(*, session: Session, now: datetime, rules: SegmentRules = RULES) -> Counter[Segment]:
    """Recompute and store every customer's segment; return how many landed in each."""
    stats = collect_stats(session=session, now=now)
    threshold = mvc_threshold((s.value_12m for s in stats), rules)
    segments = {s.customer_id: classify(s, threshold, now, rules) for s in stats}
    for customer in session.scalars(select(Customer).where(Customer.id.in_(segments))):
        was, customer.segment = customer.segment, segments[customer.id]
        customer.segment_updated_at = now
        if was is not customer.segment:
            moved = {
                **webhooks.customer_ref(customer),
                "from": was.value if was else None,
                "to": customer.segment.value,
            }
            webhooks.emit(session, "customer.segment_changed", moved, now=now)
    session.flush()
    return Counter(segments.values())


def _money(value: object) -> Decimal:
    # SQLite sums NUMERIC columns as floats; go through str so 19.99 stays 19.99.
    return Decimal(str(value or 0)).quantize(CENT)


def _aware(value: datetime | str | None) -> datetime | None:
    # Aggregates bypass the column type, so SQLite hands back naive UTC (or even a string).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
