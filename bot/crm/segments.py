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

Segments follow the customer: the scheduler refreshes everybody's every night (`refresh_all`, once a
day: a `segment_run` row per day), and the shop's order updates refresh one customer's
(`refresh_customer`, against the last night's MVC threshold). Every move is kept in `segment_change`
(from, to, when, which rule, what triggered it) and emitted as `customer.segment_changed`; reports
read the segment a customer had at the time (`segments_at`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select, update
from sqlalchemy.orm import Session

from bot.crm import webhooks
from bot.crm.clock import aggregate_time
from bot.crm.models import (
    Complaint,
    Customer,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    Segment,
    SegmentChange,
    SegmentRun,
    utcnow,
)
from bot.crm.queries import OnlyCustomers

ZERO = Decimal("0")
CENT = Decimal("0.01")
COUNTED_ORDER_STATUSES = (OrderStatus.PLACED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
# Bulk UPDATEs skip matching the session's objects (100,000 customers would be fetched back); the
# customers the session holds are expired instead.
UNSYNCED = {"synchronize_session": False}
CHUNK = 500  # ids per IN (...) list: well under SQLite's bound on parameters
# Why a customer is in their segment, as the history stores it (a code) and the record shows it.
RULE_WORDS = {
    "below_zero": "costs more to serve than they bring",
    "top_value": "in the top 20% by 12-month value",
    "rising_spend": "spend rising",
    "young_frequent": "new and buying often",
    "no_rule": "no special rule applies",
}


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
    return decide(stats, threshold, now, rules)[0]


def decide(
    stats: CustomerStats, threshold: Decimal | None, now: datetime, rules: SegmentRules = RULES
) -> tuple[Segment, str]:
    """The segment of one customer and the rule that put them there (a key of RULE_WORDS)."""
    incidents = stats.complaints_12m + stats.refunds_12m
    if contribution(stats, rules) < ZERO and incidents >= rules.bz_min_incidents:
        return Segment.BZ, "below_zero"
    if threshold is not None and stats.value_12m >= threshold and stats.value_12m > ZERO:
        return Segment.MVC, "top_value"
    if _is_growing(stats, rules):
        return Segment.MCC, "rising_spend"
    if _is_young_and_frequent(stats, now, rules):
        return Segment.MCC, "young_frequent"
    return Segment.STANDARD, "no_rule"


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


def collect_stats(
    *, session: Session, now: datetime, customer_ids: Collection[int] | None = None
) -> list[CustomerStats]:
    """Aggregate orders, refunds and complaints per customer (everybody, or the ones given), in four
    queries."""
    year_ago, half_year_ago, quarter_ago = (now - timedelta(days=d) for d in (365, 182, 90))
    counted = Order.status.in_(COUNTED_ORDER_STATUSES)

    def spend_between(start: datetime, end: datetime) -> ColumnElement[Decimal]:
        inside = counted & (Order.placed_at >= start) & (Order.placed_at < end)
        return func.coalesce(func.sum(case((inside, Order.total), else_=0)), 0)

    def count_since(start: datetime) -> ColumnElement[int]:
        return func.sum(case((counted & (Order.placed_at >= start) & (Order.placed_at <= now), 1), else_=0))

    only = OnlyCustomers(customer_ids)

    order_rows = session.execute(
        only(
            Order.customer_id,
            select(
                Order.customer_id,
                spend_between(year_ago, now + timedelta(microseconds=1)),
                spend_between(half_year_ago, now + timedelta(microseconds=1)),
                spend_between(year_ago, half_year_ago),
                count_since(half_year_ago),
                count_since(quarter_ago),
                func.min(case((Order.placed_at <= now, Order.placed_at), else_=None)),
            ),
        ).group_by(Order.customer_id)
    ).all()
    refund_rows = dict(
        (cid, (_money(amount), count))
        for cid, amount, count in session.execute(
            only(
                Refund.customer_id,
                select(Refund.customer_id, func.sum(Refund.amount), func.count(Refund.id))
                .where(Refund.requested_at >= year_ago, Refund.requested_at <= now)
                .where(Refund.status != RefundStatus.REJECTED),
            ).group_by(Refund.customer_id)
        )
    )
    complaint_counts: dict[int, int] = dict(
        session.execute(
            only(
                Complaint.customer_id,
                select(Complaint.customer_id, func.count(Complaint.id)).where(
                    Complaint.created_at >= year_ago, Complaint.created_at <= now
                ),
            ).group_by(Complaint.customer_id)
        )
        .tuples()
        .all()
    )
    by_customer = {
        cid: CustomerStats(
            customer_id=cid,
            spend_12m=_money(s12),
            spend_recent_6m=_money(s6),
            spend_prior_6m=_money(sp6),
            orders_recent_6m=int(o6 or 0),
            orders_90d=int(o90 or 0),
            first_order_at=aggregate_time(first),
        )
        for cid, s12, s6, sp6, o6, o90, first in order_rows
    }
    # Customers who did not exist yet at `now` have no segment then (the demo computes past ones).
    customer_ids = session.scalars(
        only(Customer.id, select(Customer.id).where(Customer.erased_at.is_(None), Customer.created_at <= now))
    ).all()
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


@dataclass(frozen=True)
class Refresh:
    """What one refresh found: how many customers landed in each segment, the MVC threshold used,
    and how many customers moved."""

    counts: Counter[Segment]
    threshold: Decimal | None
    changed: int


def assign_segments(
    *, session: Session, now: datetime, rules: SegmentRules = RULES, trigger: str = "nightly"
) -> Counter[Segment]:
    """Recompute and store every customer's segment; return how many landed in each."""
    return _refresh_everybody(session, now, rules, trigger).counts


def refresh_all(
    *, session: Session, now: datetime | None = None, rules: SegmentRules = RULES, trigger: str = "nightly"
) -> SegmentRun | None:
    """Refresh everybody's segment once for `now`'s day (UTC); None when that day's run exists.

    The run's row is written first: a second scheduler racing on the same day fails on its unique
    day and its transaction rolls back, so nobody's history gets the same move twice."""
    now = now or utcnow()
    if session.scalar(select(SegmentRun.id).where(SegmentRun.day == now.date())) is not None:
        return None
    run = SegmentRun(day=now.date(), ran_at=now)
    session.add(run)
    session.flush()
    found = _refresh_everybody(session, now, rules, trigger)
    run.mvc_threshold, run.customers, run.changed = found.threshold, sum(found.counts.values()), found.changed
    session.flush()
    return run


def refresh_customer(
    *,
    session: Session,
    customer_id: int,
    now: datetime | None = None,
    rules: SegmentRules = RULES,
    trigger: str = "orders",
) -> Segment | None:
    """Recompute one customer's segment against the last nightly MVC threshold; return it (None
    for a customer erased or unknown)."""
    found = refresh_customers(
        session=session, customer_ids=[customer_id], now=now, rules=rules, trigger=trigger
    )
    return found.get(customer_id)


def refresh_customers(
    *,
    session: Session,
    customer_ids: Collection[int],
    now: datetime | None = None,
    rules: SegmentRules = RULES,
    trigger: str = "orders",
) -> dict[int, Segment]:
    """Recompute some customers' segments against the last nightly MVC threshold, in a few queries
    per chunk of customers; return them (erased or unknown customers are left out)."""
    now = now or utcnow()
    decided: dict[int, tuple[Segment, str]] = {}
    threshold = _latest_threshold(session, now, rules) if customer_ids else None
    for chunk in _chunks(sorted(customer_ids)):
        stats = collect_stats(session=session, now=now, customer_ids=chunk)
        decided.update({s.customer_id: decide(s, threshold, now, rules) for s in stats})
    if decided:
        _store(session, decided, now, trigger, everybody=False)
    return {cid: segment for cid, (segment, _) in decided.items()}


def segment_counts(*, session: Session) -> Counter[Segment]:
    """How many customers (not erased) are in each segment now."""
    return Counter(
        dict(
            session.execute(
                select(Customer.segment, func.count())
                .where(Customer.erased_at.is_(None))
                .group_by(Customer.segment)
            )
            .tuples()
            .all()
        )
    )


def _latest_threshold(session: Session, now: datetime, rules: SegmentRules) -> Decimal | None:
    """The newest nightly run's MVC threshold; before the first run, the population's own."""
    run = session.scalar(select(SegmentRun).order_by(SegmentRun.day.desc()).limit(1))
    if run is not None:
        return run.mvc_threshold
    return mvc_threshold((s.value_12m for s in collect_stats(session=session, now=now)), rules)


def _refresh_everybody(session: Session, now: datetime, rules: SegmentRules, trigger: str) -> Refresh:
    stats = collect_stats(session=session, now=now)
    threshold = mvc_threshold((s.value_12m for s in stats), rules)
    decided = {s.customer_id: decide(s, threshold, now, rules) for s in stats}
    changed = _store(session, decided, now, trigger, everybody=True)
    return Refresh(Counter(segment for segment, _ in decided.values()), threshold, changed)


def _store(
    session: Session,
    decided: Mapping[int, tuple[Segment, str]],
    now: datetime,
    trigger: str,
    *,
    everybody: bool,
) -> int:
    """Write the segments that moved, their history and their events, in a few statements; return
    how many customers moved. A customer's first computation is history too (from nothing)."""
    session.flush()
    current = session.execute(
        select(Customer.id, Customer.segment, Customer.segment_updated_at, Customer.external_id).where(
            Customer.erased_at.is_(None), *(() if everybody else (Customer.id.in_(list(decided)),))
        )
    ).all()
    moves: dict[Segment, list[int]] = {}
    history = []
    moved: list[dict[str, Any]] = []
    for cid, was, computed_at, external_id in current:
        if cid not in decided:
            continue
        segment, rule = decided[cid]
        if computed_at is not None and was is segment:
            continue
        history.append(
            {
                "customer_id": cid,
                "from_segment": was if computed_at is not None else None,
                "to_segment": segment,
                "rule": rule,
                "trigger": trigger,
                "changed_at": now,
            }
        )
        if was is not segment:
            moves.setdefault(segment, []).append(cid)
            moved.append(
                {  # webhooks.customer_ref's keys, from the row already read
                    "customer_id": cid,
                    "customer_external_id": external_id,
                    "from": was.value if was else None,
                    "to": segment.value,
                }
            )
    webhooks.emit_many(session, "customer.segment_changed", moved, now=now)  # the subscriptions read once
    for segment, ids in moves.items():
        for chunk in _chunks(ids):
            session.execute(
                update(Customer).where(Customer.id.in_(chunk)).values(segment=segment),
                execution_options=UNSYNCED,
            )
    if history:
        session.execute(insert(SegmentChange), history)
    stamped = update(Customer).where(Customer.erased_at.is_(None)).values(segment_updated_at=now)
    # Everybody: the customers collect_stats counted (one statement); otherwise the ones given.
    session.execute(
        stamped.where(Customer.created_at <= now)
        if everybody
        else stamped.where(Customer.id.in_(list(decided))),
        execution_options=UNSYNCED,
    )
    _expire_loaded_customers(session)
    return sum(len(ids) for ids in moves.values())


def _expire_loaded_customers(session: Session) -> None:
    """Make customers already loaded in the session read their new segment on next access."""
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, Customer):
            session.expire(loaded, ["segment", "segment_updated_at"])


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


@dataclass(frozen=True)
class Since:
    """A customer's segment with the moment they entered it and where they came from."""

    segment: Segment
    since: datetime | None  # None: no change recorded
    was: Segment | None  # None: first computed then
    rule: str | None


def segment_since(*, session: Session, customer_id: int) -> Since:
    """The customer's segment, since when, and what it was before (for the record)."""
    segment = session.scalar(select(Customer.segment).where(Customer.id == customer_id))
    last = session.scalar(
        select(SegmentChange)
        .where(SegmentChange.customer_id == customer_id)
        .order_by(SegmentChange.changed_at.desc(), SegmentChange.id.desc())
        .limit(1)
    )
    if segment is None:
        raise LookupError(f"customer {customer_id} not found")
    if last is None or last.to_segment is not segment:
        return Since(segment, None, None, None)
    return Since(segment, last.changed_at, last.from_segment, last.rule)


def segments_at(*, session: Session, moments: Mapping[int, datetime]) -> dict[int, Segment]:
    """Each customer's segment at their moment: the last change before it; before the first change,
    what that change moved them from (or to, when it was the first computation); with no history,
    today's segment."""
    changes: dict[int, list[tuple[datetime, Segment | None, Segment]]] = {}
    ids = list(moments)
    for chunk in _chunks(ids):
        for cid, at, was, to in session.execute(
            select(
                SegmentChange.customer_id,
                SegmentChange.changed_at,
                SegmentChange.from_segment,
                SegmentChange.to_segment,
            )
            .where(SegmentChange.customer_id.in_(chunk))
            .order_by(SegmentChange.customer_id, SegmentChange.changed_at, SegmentChange.id)
        ):
            changes.setdefault(cid, []).append((at, was, to))
    today: dict[int, Segment] = {}
    for chunk in _chunks([cid for cid in ids if cid not in changes]):
        today.update(
            session.execute(select(Customer.id, Customer.segment).where(Customer.id.in_(chunk)))
            .tuples()
            .all()
        )
    found = {}
    for cid, moment in moments.items():
        if cid not in changes:
            found[cid] = today[cid]
            continue
        before = [to for at, _, to in changes[cid] if at <= moment]
        _, first_was, first_to = changes[cid][0]
        found[cid] = before[-1] if before else (first_was or first_to)
    return found


def _money(value: object) -> Decimal:
    # SQLite sums NUMERIC columns as floats; go through str so 19.99 stays 19.99.
    return Decimal(str(value or 0)).quantize(CENT)
