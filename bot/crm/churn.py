"""Churn risk from behaviour: a score from 0 to 1 per customer with the reasons that make it up.

Each warning sign the customer shows is a factor with a weight between 0 and 1, measured against
the customer's **own** history where there is one (their usual interval between orders); the score
is the chance that at least one of them is real, were they independent (a "noisy OR"):

    risk = 1 - (1 - w1) * (1 - w2) * ...

so one strong sign is enough for a high score, every further sign raises it, and it never passes
1. The factors, with their weights stored beside the score as the reasons agents and marketers read,
are described in docs/churn-risk.md. The scheduler recomputes everybody nightly (with the segments);
an order from the shop recomputes its customer, and so does every event that moves a factor: a
complaint filed, resolved, closed, reopened or breached, a rating, a reply to our outreach, a
membership change (each of those write paths calls `refresh_customer` or `refresh_customers`).
"""

from __future__ import annotations

import math
from calendar import monthrange
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm.clock import aggregate_time, as_utc
from bot.crm.models import (
    Complaint,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    Order,
    OrderStatus,
    OutreachKind,
    Subscription,
    SubscriptionStatus,
    Survey,
    utcnow,
)
from bot.crm.queries import OnlyCustomers

COUNTED_ORDER_STATUSES = (OrderStatus.PLACED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
# Messages we start that a customer who still cares usually answers. Birthday and holiday greetings
# and the hand-back follow-up are left out: nobody is expected to answer those.
ANSWERABLE = (
    OutreachKind.CAMPAIGN,
    OutreachKind.SILENCE,
    OutreachKind.WIN_BACK,
    OutreachKind.COMPLAINT_FOLLOWUP,
    OutreachKind.DELIVERY_CHECK,
    OutreachKind.SURVEY,
)
SENT = (DeliveryStatus.SENT,)
# The membership state that says most about leaving, when a customer has several.
MEMBERSHIP_ORDER = (
    SubscriptionStatus.CANCEL_REQUESTED,
    SubscriptionStatus.PAUSED,
    SubscriptionStatus.CANCELLED,
    SubscriptionStatus.ACTIVE,
)
CHUNK = 500
T = TypeVar("T")
TOP_REASONS = 5


@dataclass(frozen=True)
class ChurnRules:
    """The factors' weights and thresholds (docs/churn-risk.md explains each).

    The values are those `python -m bot.crm.churn_eval --tune` found on the demo history's tuning
    cut-offs; a weight of 0 means the search found that sign adds nothing there.
    """

    rhythm_min_orders: int = 3  # two intervals make a rhythm
    overdue_from: float = 2.5  # × the usual interval: still on time until then
    overdue_full: float = 6.0  # × the usual interval: the whole weight from then
    overdue_weight: float = 0.3
    no_rhythm_from_days: int = 30  # without a rhythm: no order for this long starts to count
    no_rhythm_full_days: int = 150
    no_rhythm_weight: float = 0.3
    slowing_weight: float = 0.1  # × the share of last half-year's orders that did not come
    spend_drop_below: float = 0.5  # spent less than this share of the half-year before
    spend_min_prior: float = 50.0  # € in the half-year before: less says nothing
    spend_weight: float = 0.1  # × the share of that half-year's spend that did not come
    cancel_requested: float = 0.5
    paused: float = 0.25
    cancelled: float = 0.35
    open_complaint: float = 0.12  # each, up to open_complaints_max
    open_complaints_max: float = 0.3
    breached_complaint: float = 0.2  # any open case past its promised time
    recent_complaint: float = 0.05  # each closed one in recent_days, up to recent_complaints_max
    recent_complaints_max: float = 0.15
    recent_days: int = 90
    late_complaint: float = 0.4  # any of those resolved later than we promised: it ended badly
    low_rating: float = 0.35  # the latest rating within rating_days was 1 or 2
    rating_days: int = 180
    ignored_one: float = 0.0  # the latest message from us went unanswered
    ignored_two: float = 0.25  # the latest two (or more) in a row
    ignored_many_from: int = 5  # this many in a row: even a customer who rarely answers would have
    ignored_many: float = 0.3
    answer_days: int = 3  # a message younger than this is not ignored yet
    silent_from_days: int = 60  # a customer who used to write has not written for this long
    silent_weight: float = 0.15
    new_days: int = 60  # joined this recently with fewer than two orders: not yet attached
    new_weight: float = 0.0
    renewal_days: int = 14  # an active membership renews within this many days
    renewal_weight: float = 0.0


RULES = ChurnRules()


@dataclass(frozen=True)
class Signals:
    """What the score reads about one customer, as of one moment."""

    customer_id: int
    joined_at: datetime
    order_times: tuple[datetime, ...] = ()  # counted orders up to the moment, oldest first
    order_totals: tuple[float, ...] = ()  # their totals in €, in the same order
    membership: SubscriptionStatus | None = None
    next_renewal: datetime | None = None  # the soonest next monthly renewal of an active membership
    open_complaints: int = 0
    breached_complaints: int = 0
    recent_complaints: int = 0  # filed within recent_days and no longer open
    late_complaints: int = 0  # of those, resolved after the time we promised: ended badly
    last_rating: int | None = None
    ignored_outreach: int = 0  # our latest answerable messages in a row without a reply
    last_inbound_at: datetime | None = None  # the customer's own latest message on any channel


@dataclass(frozen=True)
class Reason:
    factor: str
    weight: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "weight": self.weight, "text": self.text}


@dataclass(frozen=True)
class Score:
    risk: float
    reasons: list[Reason] = field(default_factory=list)


def score(signals: Signals, now: datetime, rules: ChurnRules = RULES) -> Score:
    """The customer's churn risk and its reasons, strongest first."""
    found = [
        reason
        for factor in FACTORS
        for reason in [factor(signals, now, rules)]
        if reason is not None and reason.weight > 0
    ]
    found.sort(key=lambda r: (-r.weight, r.factor))
    risk = 1 - math.prod(1 - r.weight for r in found)
    return Score(round(risk, 2), found[:TOP_REASONS])


def usual_interval(order_times: tuple[datetime, ...]) -> float:
    """The median number of days between consecutive orders."""
    gaps = [(b - a).total_seconds() / 86400 for a, b in zip(order_times, order_times[1:], strict=False)]
    return float(median(gaps))


def _overdue(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if len(s.order_times) < rules.rhythm_min_orders:
        return None
    usual = max(1.0, usual_interval(s.order_times))
    days = _days(now - s.order_times[-1])
    share = _ramp(days / usual, rules.overdue_from, rules.overdue_full)
    text = f"no order for {days} days, usually every {round(usual)}"
    return Reason("overdue", _w(rules.overdue_weight * share), text)


def _no_rhythm(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if len(s.order_times) >= rules.rhythm_min_orders:
        return None
    days = _days(now - (s.order_times[-1] if s.order_times else s.joined_at))
    share = _ramp(days, rules.no_rhythm_from_days, rules.no_rhythm_full_days)
    text = f"no order for {days} days" if s.order_times else f"no order in {days} days since joining"
    return Reason("no_recent_order", _w(rules.no_rhythm_weight * share), text)


def _slowing(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    half, year = now - timedelta(days=182), now - timedelta(days=364)
    recent = sum(1 for t in s.order_times if t > half)
    prior = sum(1 for t in s.order_times if year < t <= half)
    if prior < 2 or recent >= prior:
        return None
    text = f"{_count(recent, 'order', 'in the last 6 months')}, {prior} in the 6 before"
    return Reason("slowing", _w(rules.slowing_weight * (prior - recent) / prior), text)


def _spend(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    half, year = now - timedelta(days=182), now - timedelta(days=364)
    paid = list(zip(s.order_times, s.order_totals, strict=False))
    recent = sum(total for t, total in paid if t > half)
    prior = sum(total for t, total in paid if year < t <= half)
    if prior < rules.spend_min_prior or recent >= prior * rules.spend_drop_below:
        return None
    text = f"spent €{recent:.0f} in the last 6 months, €{prior:.0f} the 6 before"
    return Reason("spend_falling", _w(rules.spend_weight * (prior - recent) / prior), text)


def _renewal(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if s.next_renewal is None:
        return None
    days = math.ceil((s.next_renewal - now).total_seconds() / 86400)
    if days > rules.renewal_days:
        return None
    return Reason("renewal_coming", rules.renewal_weight, f"membership renews in {_count(days, 'day', '')}")


def _membership(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    weights = {
        SubscriptionStatus.CANCEL_REQUESTED: (rules.cancel_requested, "membership cancellation requested"),
        SubscriptionStatus.PAUSED: (rules.paused, "membership paused"),
        SubscriptionStatus.CANCELLED: (rules.cancelled, "membership cancelled"),
    }
    if s.membership not in weights:
        return None
    weight, text = weights[s.membership]
    return Reason("membership", weight, text)


def _open_complaints(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if not s.open_complaints:
        return None
    weight = min(rules.open_complaints_max, rules.open_complaint * s.open_complaints)
    return Reason("open_complaints", _w(weight), _count(s.open_complaints, "complaint", "open"))


def _breached(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if not s.breached_complaints:
        return None
    text = _count(s.breached_complaints, "complaint", "past the time we promised")
    return Reason("breached_complaints", rules.breached_complaint, text)


def _recent_complaints(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if not s.recent_complaints:
        return None
    weight = min(rules.recent_complaints_max, rules.recent_complaint * s.recent_complaints)
    text = _count(s.recent_complaints, "complaint", f"in the last {rules.recent_days} days")
    return Reason("recent_complaints", _w(weight), text)


def _late_complaints(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if not s.late_complaints:
        return None
    text = f"{_count(s.late_complaints, 'complaint', '')} resolved later than we promised"
    return Reason("late_complaints", rules.late_complaint, text)


def _low_rating(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if s.last_rating is None or s.last_rating > 2:
        return None
    return Reason("low_rating", rules.low_rating, f"last rating {s.last_rating}/5")


def _ignored(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if not s.ignored_outreach:
        return None
    weight = (
        max(rules.ignored_two, rules.ignored_many)
        if s.ignored_outreach >= rules.ignored_many_from
        else rules.ignored_two
        if s.ignored_outreach >= 2
        else rules.ignored_one
    )
    text = f"{_count(s.ignored_outreach, 'message', 'from us')} unanswered"
    return Reason("ignored_outreach", weight, text)


def _silent(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    if s.last_inbound_at is None:
        return None  # never wrote: silence says nothing about them
    days = _days(now - s.last_inbound_at)
    if days < rules.silent_from_days:
        return None
    return Reason("silent", rules.silent_weight, f"no message from them in {days} days")


def _new(s: Signals, now: datetime, rules: ChurnRules) -> Reason | None:
    days = _days(now - s.joined_at)
    if days >= rules.new_days or len(s.order_times) >= 2:
        return None
    return Reason(
        "new", rules.new_weight, f"joined {days} days ago, {_count(len(s.order_times), 'order', '')}"
    )


FACTORS = (
    _overdue,
    _no_rhythm,
    _slowing,
    _spend,
    _membership,
    _open_complaints,
    _breached,
    _recent_complaints,
    _late_complaints,
    _low_rating,
    _ignored,
    _silent,
    _new,
    _renewal,
)


def _ramp(value: float, start: float, full: float) -> float:
    """0 up to `start`, 1 from `full`, a straight line between."""
    return min(1.0, max(0.0, (value - start) / (full - start)))


def _days(span: timedelta) -> int:
    return max(0, span.days)


def _w(weight: float) -> float:
    return round(weight, 2)


def _count(n: int, noun: str, rest: str) -> str:
    return " ".join(p for p in (f"{n} {noun}{'' if n == 1 else 's'}", rest) if p)


# ----- reading the signals, in a few queries for everybody -----


def collect_signals(
    *, session: Session, now: datetime, customer_ids: Collection[int] | None = None, rules: ChurnRules = RULES
) -> list[Signals]:
    """Everybody's signals as of `now` (or the customers given), one query per kind of signal."""

    only = OnlyCustomers(customer_ids)

    joined = dict(
        session.execute(
            only(
                Customer.id,
                select(Customer.id, Customer.created_at).where(
                    Customer.erased_at.is_(None), Customer.created_at <= now
                ),
            )
        )
        .tuples()
        .all()
    )
    fields: dict[int, dict[str, Any]] = {cid: {} for cid in joined}
    _orders(session, only, now, fields)
    _memberships(session, only, now, fields)
    _complaints(session, only, now, rules, fields)
    _ratings(session, only, now, rules, fields)
    _outreach(session, only, now, rules, fields)
    _inbound(session, only, now, fields)
    return [Signals(customer_id=cid, joined_at=joined[cid], **fields[cid]) for cid in joined]


def _orders(session: Session, only: OnlyCustomers, now: datetime, fields: dict[int, dict[str, Any]]) -> None:
    times: dict[int, list[datetime]] = {}
    totals: dict[int, list[float]] = {}
    rows = session.execute(
        only(
            Order.customer_id,
            select(Order.customer_id, Order.placed_at, Order.total).where(
                Order.status.in_(COUNTED_ORDER_STATUSES), Order.placed_at <= now
            ),
        )
        .order_by(Order.customer_id, Order.placed_at)
        .execution_options(yield_per=5000)
    )
    for cid, placed, total in rows:
        times.setdefault(cid, []).append(placed)
        totals.setdefault(cid, []).append(float(total))
    for cid, found in times.items():
        if cid in fields:
            fields[cid]["order_times"] = tuple(found)
            fields[cid]["order_totals"] = tuple(totals[cid])


def _memberships(
    session: Session, only: OnlyCustomers, now: datetime, fields: dict[int, dict[str, Any]]
) -> None:
    rank = {status: n for n, status in enumerate(MEMBERSHIP_ORDER)}
    rows = session.execute(
        only(
            Subscription.customer_id,
            select(
                Subscription.customer_id,
                Subscription.status,
                Subscription.cancel_requested_at,
                Subscription.cancelled_at,
                Subscription.paused_at,
                Subscription.started_at,
                Subscription.renewed_at,
            ).where(Subscription.started_at <= now),
        )
    )
    for cid, stored, requested, cancelled, paused, started, renewed in rows:
        status = status_as_of(stored, now, requested=requested, cancelled=cancelled, paused=paused)
        if cid in fields:
            was = fields[cid].get("membership")
            if was is None or rank[status] < rank[was]:
                fields[cid]["membership"] = status
            if status is SubscriptionStatus.ACTIVE:
                due = next_renewal(as_utc(started), as_utc(renewed), now)
                soonest = fields[cid].get("next_renewal")
                if soonest is None or due < soonest:
                    fields[cid]["next_renewal"] = due


def next_renewal(started: datetime, renewed: datetime | None, now: datetime) -> datetime:
    """The first monthly renewal after `now`. The CRM stores no renewal date, only when the membership
    started and when the shop last renewed it: the plans are monthly, so the next one is a whole number
    of calendar months after the last renewal seen by `now` (or the start), on the same day of the
    month (the month's last day when it is shorter)."""
    anchor = renewed if renewed is not None and started <= renewed <= now else started
    months = max(1, (now.year - anchor.year) * 12 + now.month - anchor.month)
    while (due := add_months(anchor, months)) <= now:
        months += 1
    return due


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later, the month's last day if it has fewer."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    return moment.replace(year=year, month=month + 1, day=min(moment.day, monthrange(year, month + 1)[1]))


def status_as_of(
    stored: SubscriptionStatus,
    now: datetime,
    *,
    requested: datetime | None,
    cancelled: datetime | None,
    paused: datetime | None,
) -> SubscriptionStatus:
    """The membership's state at `now`: the stored one, unless it changed after `now` (a backtest)."""
    if stored is SubscriptionStatus.CANCELLED and cancelled is not None and cancelled > now:
        stored = SubscriptionStatus.CANCEL_REQUESTED
    if stored is SubscriptionStatus.CANCEL_REQUESTED and (requested is None or requested > now):
        return SubscriptionStatus.ACTIVE if requested is not None else stored
    if stored is SubscriptionStatus.PAUSED and paused is not None and paused > now:
        return SubscriptionStatus.ACTIVE
    return stored


def _complaints(
    session: Session, only: OnlyCustomers, now: datetime, rules: ChurnRules, fields: dict[int, dict[str, Any]]
) -> None:
    # Imported here: complaints.py rescores its customer through this module.
    from bot.crm.complaints import OPEN_STATUSES

    since = now - timedelta(days=rules.recent_days)
    rows = session.execute(
        only(
            Complaint.customer_id,
            select(
                Complaint.customer_id, Complaint.status, Complaint.sla_due_at, Complaint.resolved_at
            ).where(
                Complaint.created_at <= now,
                Complaint.status.in_(OPEN_STATUSES)
                | (Complaint.created_at >= since)
                | (Complaint.resolved_at > now),
            ),
        )
    )
    for cid, status, due, resolved in rows:
        if cid not in fields:
            continue
        mine = fields[cid]
        # Resolved after `now` (a backtest looking back): it was still open then.
        if status in OPEN_STATUSES or (resolved is not None and as_utc(resolved) > now):
            mine["open_complaints"] = mine.get("open_complaints", 0) + 1
            if due is not None and due < now:
                mine["breached_complaints"] = mine.get("breached_complaints", 0) + 1
        else:
            mine["recent_complaints"] = mine.get("recent_complaints", 0) + 1
            if resolved is not None and due is not None and as_utc(resolved) > as_utc(due):
                mine["late_complaints"] = mine.get("late_complaints", 0) + 1


def _ratings(
    session: Session, only: OnlyCustomers, now: datetime, rules: ChurnRules, fields: dict[int, dict[str, Any]]
) -> None:
    rows = session.execute(
        only(
            Survey.customer_id,
            select(Survey.customer_id, Survey.score).where(
                Survey.score.is_not(None),
                Survey.created_at <= now,
                Survey.created_at >= now - timedelta(days=rules.rating_days),
            ),
        ).order_by(Survey.created_at, Survey.id)
    )
    for cid, score_ in rows:
        if cid in fields:
            fields[cid]["last_rating"] = score_  # the latest wins


def _outreach(
    session: Session, only: OnlyCustomers, now: datetime, rules: ChurnRules, fields: dict[int, dict[str, Any]]
) -> None:
    answered_by = now - timedelta(days=rules.answer_days)
    rows = session.execute(
        only(
            Delivery.customer_id,
            select(Delivery.customer_id, Delivery.sent_at, Delivery.replied_at).where(
                Delivery.kind.in_(ANSWERABLE),
                Delivery.status.in_(SENT),
                Delivery.sent_at.is_not(None),
                Delivery.sent_at <= now,
                Delivery.sent_at >= now - timedelta(days=rules.rating_days),
            ),
        ).order_by(Delivery.customer_id, Delivery.sent_at.desc(), Delivery.id.desc())
    )
    streak: dict[int, int] = {}
    done: set[int] = set()
    for cid, sent, replied in rows:
        if cid in done or cid not in fields:
            continue
        if replied is not None and as_utc(replied) <= now:  # an answer, even to our latest, ends the run
            done.add(cid)
            continue
        if as_utc(sent) > answered_by:
            continue  # too young to be ignored yet
        streak[cid] = streak.get(cid, 0) + 1
    for cid, n in streak.items():
        fields[cid]["ignored_outreach"] = n


def _inbound(session: Session, only: OnlyCustomers, now: datetime, fields: dict[int, dict[str, Any]]) -> None:
    rows = session.execute(
        only(
            Conversation.customer_id,
            select(Conversation.customer_id, func.max(Message.created_at))
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.direction == Direction.INBOUND, Message.created_at <= now),
        ).group_by(Conversation.customer_id)
    )
    for cid, last in rows:
        if cid in fields and last is not None:
            fields[cid]["last_inbound_at"] = aggregate_time(last)


# ----- storing the scores -----


def refresh_all(*, session: Session, now: datetime | None = None, rules: ChurnRules = RULES) -> int:
    """Recompute and store every customer's churn risk and reasons; return how many."""
    now = now or utcnow()
    return _store(session, collect_signals(session=session, now=now, rules=rules), now, rules)


def refresh_customer(
    *, session: Session, customer_id: int, now: datetime | None = None, rules: ChurnRules = RULES
) -> Score | None:
    """Recompute and store one customer's churn risk; None for a customer erased or unknown."""
    return refresh_customers(session=session, customer_ids=[customer_id], now=now, rules=rules).get(
        customer_id
    )


def refresh_customers(
    *, session: Session, customer_ids: Collection[int], now: datetime | None = None, rules: ChurnRules = RULES
) -> dict[int, Score]:
    """Recompute and store some customers' churn risk, a few queries per chunk of customers."""
    now = now or utcnow()
    signals = [
        found
        for chunk in _chunks(sorted(customer_ids))
        for found in collect_signals(session=session, now=now, customer_ids=chunk, rules=rules)
    ]
    _store(session, signals, now, rules)
    return {s.customer_id: score(s, now, rules) for s in signals}


def _store(session: Session, signals: list[Signals], now: datetime, rules: ChurnRules) -> int:
    session.flush()
    rows = []
    for s in signals:
        found = score(s, now, rules)
        rows.append(
            {
                "id": s.customer_id,
                "churn_risk": found.risk,
                "churn_reasons": [r.as_dict() for r in found.reasons],
                "churn_scored_at": now,
            }
        )
    for chunk in _chunks(rows):
        session.execute(update(Customer), chunk)  # ORM bulk UPDATE by primary key: one executemany
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, Customer):
            session.expire(loaded, ["churn_risk", "churn_reasons", "churn_scored_at"])
    return len(rows)


def _chunks(rows: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]
