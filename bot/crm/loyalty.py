"""The loyalty dashboard's figures: churn, value, saves, satisfaction → loyalty, service, by month.

Every chart is one `Chart`: x labels, named series of numbers (None where there was nothing to count)
and the sentence that says what it shows; the console draws it, lists it as a table and exports it as
CSV. Each figure is defined in `DEFINITIONS` (the page shows them) and reuses the CRM's own words:

- **lost**: a membership cancelled (asked for or ended: `coalesce(cancel_requested_at, cancelled_at)`),
  or gone silent: the customer's latest own order or message is more than 60 days old, the
  churn-risk backtest's label (`bot.crm.churn_eval.HORIZON`, `churned`). Each customer is lost once,
  at the earlier of the two, and counted in the segment they were in then (`segments_at`).
- **active** in a month: the customer placed an order (placed, shipped or delivered) or wrote to us
  in that calendar month; our own messages never count.
- saves, save rate, offers: `bot.crm.reports` (`leavers`, `tally`), the same figures as Reports.
- **win-back**: drift episodes that ended with the customer coming back (`bot.crm.drift`).

The period is the last N calendar months, the current one included (it is still running). Filters
pick customers: by segment today (the churn chart by the segment at the time of loss) and by a channel
they have an identity on. Queries group in the database (GROUP BY month, segment, team); medians are
taken in Python from the rows, as Reports does, so they agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, case, func, select, true, union
from sqlalchemy.orm import Session

from bot.crm.churn import COUNTED_ORDER_STATUSES
from bot.crm.churn_eval import HORIZON
from bot.crm.clock import aggregate_time, as_utc
from bot.crm.labels import label
from bot.crm.models import (
    Agent,
    Channel,
    ChannelIdentity,
    Complaint,
    Conversation,
    Customer,
    Direction,
    DriftEpisode,
    Handoff,
    LeaveReason,
    Message,
    Offer,
    Order,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    SegmentChange,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from bot.crm.reports import NO_REASON, Leaver, Period, leavers, middle, tally
from bot.crm.segments import segments_at

PERIOD_MONTHS = (3, 6, 12, 24)
DEFAULT_MONTHS = 12
COHORT_AFTER = (1, 3, 6, 12)  # months after joining
SILENT_AFTER = HORIZON  # no own order or message for this long: gone silent (churn_eval's label)
SAVE_LASTS = timedelta(days=90)  # a save is judged this long after the yes
REPEAT_WITHIN = timedelta(days=60)  # an order this soon after the latest rating is a repeat purchase
RATING_GROUPS = ("5", "4", "3 or less")
SEGMENT_ORDER = (Segment.MVC, Segment.MCC, Segment.STANDARD, Segment.BZ)
TOP_MOVES = 7  # segment moves shown one by one; the rest are summed as "other moves"
LOST_CANCELLED, LOST_SILENT = "membership cancelled", "went silent"
NPS_NOTE = "NPS (would you recommend us?) is not asked yet: no NPS figures until the survey exists."

DEFINITIONS: dict[str, str] = {
    "Lost": "A customer whose membership was cancelled (the month they asked, or it ended), or who "
    "went silent: no order and no message of their own for 60 days (counted in the month the 60 days "
    "ran out). Each customer is lost once, at the earlier of the two, in the segment they were in then. "
    "The target is zero.",
    "Active": "Placed an order (placed, shipped or delivered, not cancelled or returned) or wrote to us "
    "in that calendar month. Our own messages never count.",
    "Cohort": "The customers whose record was created in one month. Retention after k months: the share "
    "of the cohort active in the k-th calendar month after the month they joined; shown once that month "
    "has ended.",
    "Revenue": "The totals of orders placed (not cancelled or returned) in the period, by the customer's "
    "segment today. MVC over time: customers in MVC at the end of each month by their segment history, "
    "and the revenue of their orders that month.",
    "Segment move": "A change of segment recorded by the nightly refresh (or an order), from → to, in "
    "the month it happened; a customer's first segment is not a move.",
    "Save rate": "As on Reports: of the customers who asked to leave in the month and decided, the share "
    "who stayed. By reason and by offer over the whole period; an offer's rate is accepted ÷ answered.",
    "Lasting save": "A customer who stayed (said yes to an offer) and, in the 90 days after the yes, "
    "neither cancelled their membership nor went without an order or a message of their own. Saves "
    "younger than 90 days are too recent to tell.",
    "Win-back rate": "Drift episodes that began in the month and ended with the customer coming back (an "
    "order or a message within 30 days), of those that ended (came back or lapsed).",
    "CSAT": "The average 1–5 rating given in the month, and how many ratings.",
    "Repeat purchase": "Customers grouped by their latest rating in the period (5, 4, 3 or less): the "
    "share who ordered again within 60 days of it. Ratings younger than 60 days are left out.",
    "SLA met": "Complaint cases resolved in the month by the time promised to the customer (resolved at "
    "or before its due time), of all the cases resolved that month.",
    "Response and resolution": "By the case's team, for cases filed in the period: the median hours from "
    "filing to the first response by a person, and to the resolution.",
    "CSAT per agent": "Ratings given after a chat an agent handled, or about a case they owned, in the "
    "period: their average and count (admins only).",
}


class InvalidFilter(ValueError):
    """A filter the dashboard does not offer; the message is for the person who asked."""


@dataclass(frozen=True)
class Filters:
    months: int = DEFAULT_MONTHS
    segment: Segment | None = None
    channel: Channel | None = None


def parse_filters(months: str | None, segment: str | None, channel: str | None) -> Filters:
    """The filters asked for in a query string; InvalidFilter for anything else."""
    if months in (None, ""):
        count = DEFAULT_MONTHS
    elif months.isdigit() and int(months) in PERIOD_MONTHS:
        count = int(months)
    else:
        raise InvalidFilter(f"choose a period of {', '.join(map(str, PERIOD_MONTHS))} months")
    try:
        chosen_segment = Segment(segment) if segment else None
    except ValueError:
        raise InvalidFilter("choose one of the segments offered") from None
    try:
        chosen_channel = Channel(channel) if channel else None
    except ValueError:
        raise InvalidFilter("choose one of the channels offered") from None
    return Filters(months=count, segment=chosen_segment, channel=chosen_channel)


# ----- months -----


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def add_months(key: str, n: int) -> str:
    year, month = int(key[:4]), int(key[5:7])
    index = year * 12 + month - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start(key: str) -> datetime:
    return datetime(int(key[:4]), int(key[5:7]), 1, tzinfo=timezone.utc)


def months_between(earlier: str, later: str) -> int:
    return (int(later[:4]) - int(earlier[:4])) * 12 + int(later[5:7]) - int(earlier[5:7])


@dataclass(frozen=True)
class Window:
    """The months shown (oldest first, the current month last) and [start, end)."""

    months: tuple[str, ...]
    start: datetime
    end: datetime

    def period(self, key: str | None = None) -> Period:
        """One month of the window (the current one ends now), or the whole window, as a Reports period."""
        if key is None:
            start, end = self.start, self.end
        else:
            start, end = month_start(key), min(month_start(add_months(key, 1)), self.end)
        return Period(days=max(1, (end - start).days), start=start, end=end)


def window(months: int, *, now: datetime) -> Window:
    last = month_key(now)
    keys = tuple(add_months(last, -n) for n in range(months - 1, -1, -1))
    return Window(months=keys, start=month_start(keys[0]), end=now)


def _month(session: Session, column: SQLColumnExpression[datetime | None]) -> ColumnElement[str]:
    """The column's calendar month in UTC, "YYYY-MM", in the database's own words."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


# ----- charts -----


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]
    target: bool = False  # a target line, drawn dashed and not a measurement
    secondary: bool = False  # a count beside a rate: drawn against its own axis


@dataclass(frozen=True)
class Chart:
    key: str  # the chart's name in URLs and CSV files
    title: str
    question: str  # what the chart answers
    kind: str  # "line", "bar" or "stacked"
    unit: str  # what the values count: "customers", "%", "hours", "score", "revenue"
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    summary: str  # one sentence with the main figures, the chart's text alternative
    note: str = ""

    @property
    def empty(self) -> bool:
        return not any(v for s in self.series if not s.target for v in s.values)

    def rows(self) -> list[tuple[str, ...]]:
        """The chart as a table: a header, then one row per label (for CSV and the page)."""
        head = ("", *(s.name for s in self.series))
        body = [
            (lab, *("" if s.values[i] is None else _fmt(s.values[i]) for s in self.series))
            for i, lab in enumerate(self.labels)
        ]
        return [head, *body]


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class Dashboard:
    filters: Filters
    window: Window
    sections: tuple[tuple[str, tuple[Chart, ...]], ...]
    nps_note: str = NPS_NOTE
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))

    def chart(self, key: str) -> Chart | None:
        return next((c for _, charts in self.sections for c in charts if c.key == key), None)

    @property
    def empty(self) -> bool:
        return all(c.empty for _, charts in self.sections for c in charts)


def dashboard(*, session: Session, filters: Filters, now: datetime, with_agents: bool = False) -> Dashboard:
    """Every chart of the dashboard for these filters; CSAT per agent only `with_agents` (admins)."""
    w = window(filters.months, now=now)
    pick = Picker(session, filters)
    service = [sla_by_month(session, pick, w), times_by_team(session, pick, w)]
    if with_agents:
        service.append(csat_by_agent(session, pick, w))
    return Dashboard(
        filters=filters,
        window=w,
        sections=(
            ("Churn", (lost_by_segment(session, pick, w), cohort_retention(session, pick, w))),
            (
                "Value",
                (
                    revenue_share(session, pick, w),
                    mvc_over_time(session, pick, w),
                    segment_moves(session, pick, w),
                ),
            ),
            (
                "Saves",
                (
                    save_rate_by_month(session, pick, w),
                    saves_by_reason(session, pick, w),
                    saves_by_offer(session, pick, w),
                    lasting_saves(session, pick, w),
                    win_back(session, pick, w),
                ),
            ),
            ("Satisfaction → loyalty", (csat_by_month(session, pick, w), repeat_by_rating(session, pick, w))),
            ("Service", tuple(service)),
        ),
    )


class Picker:
    """The customers the filters keep: as a WHERE clause on a customer id column, and as a test."""

    def __init__(self, session: Session, filters: Filters) -> None:
        self.filters = filters
        query = select(Customer.id)
        if filters.segment is not None:
            query = query.where(Customer.segment == filters.segment)
        if filters.channel is not None:
            query = query.where(
                Customer.id.in_(
                    select(ChannelIdentity.customer_id).where(ChannelIdentity.channel == filters.channel)
                )
            )
        self.query: Select[tuple[int]] | None = (
            query if filters.segment is not None or filters.channel is not None else None
        )
        self._ids: set[int] | None = None
        self._session = session

    def where(self, column: SQLColumnExpression[int]) -> ColumnElement[bool]:
        return true() if self.query is None else column.in_(self.query)

    def where_channel(self, column: SQLColumnExpression[int]) -> ColumnElement[bool]:
        """Only the channel filter (for figures grouped by the segment at the time)."""
        channel = self.filters.channel
        if channel is None:
            return true()
        return column.in_(select(ChannelIdentity.customer_id).where(ChannelIdentity.channel == channel))

    def keeps(self, customer_id: int) -> bool:
        if self.query is None:
            return True
        if self._ids is None:
            self._ids = set(self._session.scalars(self.query))
        return customer_id in self._ids


# ----- churn -----


def _last_activity(session: Session, pick: Picker, *, channel_only: bool = False) -> dict[int, datetime]:
    """Each customer's latest own order or inbound message (one GROUP BY each)."""
    keep = pick.where_channel if channel_only else pick.where
    found: dict[int, datetime] = {}
    orders = session.execute(
        select(Order.customer_id, func.max(Order.placed_at))
        .where(Order.status.in_(COUNTED_ORDER_STATUSES), keep(Order.customer_id))
        .group_by(Order.customer_id)
    ).tuples()
    messages = session.execute(
        select(Conversation.customer_id, func.max(Message.created_at))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(
            Message.direction == Direction.INBOUND,
            Conversation.customer_id.is_not(None),
            keep(Conversation.customer_id),
        )
        .group_by(Conversation.customer_id)
    ).tuples()
    for cid, at in [*orders, *messages]:
        moment = aggregate_time(at)
        if cid is not None and moment is not None and (cid not in found or moment > found[cid]):
            found[cid] = moment
    return found


def lost_customers(session: Session, pick: Picker, *, now: datetime) -> dict[int, tuple[datetime, str]]:
    """Every lost customer: when they were lost and how (cancelled, or went silent)."""
    lost: dict[int, tuple[datetime, str]] = {}
    for cid, at in session.execute(
        select(
            Subscription.customer_id,
            func.min(func.coalesce(Subscription.cancel_requested_at, Subscription.cancelled_at)),
        )
        .where(
            Subscription.status.in_((SubscriptionStatus.CANCEL_REQUESTED, SubscriptionStatus.CANCELLED)),
            pick.where_channel(Subscription.customer_id),
        )
        .group_by(Subscription.customer_id)
    ).tuples():
        moment = aggregate_time(at)
        if moment is not None and moment <= now:
            lost[cid] = (moment, LOST_CANCELLED)
    for cid, last in _last_activity(session, pick, channel_only=True).items():
        silent_at = last + SILENT_AFTER
        if silent_at <= now and (cid not in lost or silent_at < lost[cid][0]):
            lost[cid] = (silent_at, LOST_SILENT)
    return lost


def lost_by_segment(session: Session, pick: Picker, w: Window) -> Chart:
    lost = {cid: v for cid, v in lost_customers(session, pick, now=w.end).items() if v[0] >= w.start}
    segments = segments_at(session=session, moments={cid: at for cid, (at, _) in lost.items()})
    counts: Counter[tuple[str, Segment]] = Counter()
    for cid, (at, _) in lost.items():
        if pick.filters.segment is None or segments[cid] is pick.filters.segment:
            counts[(month_key(at), segments[cid])] += 1
    shown = [s for s in SEGMENT_ORDER if pick.filters.segment in (None, s)]
    series = [Series(f"{label(s)} lost", tuple(float(counts[(m, s)]) for m in w.months)) for s in shown]
    total = sum(counts.values())
    worst = max(w.months, key=lambda m: sum(counts[(m, s)] for s in shown))
    return Chart(
        key="churn",
        title="Customers lost per month, by segment",
        question="How many customers do we lose each month, and from which segment? The aim is zero.",
        kind="stacked",
        unit="customers",
        labels=w.months,
        series=(*series, Series("Target: zero churn", tuple(0.0 for _ in w.months), target=True)),
        summary=f"{total} customers lost in {len(w.months)} months"
        + (f"; the most in {worst} ({sum(counts[(worst, s)] for s in shown)})." if total else "."),
    )


def cohort_retention(session: Session, pick: Picker, w: Window) -> Chart:
    joined = _month(session, Customer.created_at)
    sizes = dict(
        session.execute(
            select(joined, func.count(Customer.id))
            .where(Customer.created_at >= w.start, pick.where(Customer.id))
            .group_by(joined)
        )
        .tuples()
        .all()
    )
    order_month = _month(session, Order.placed_at)
    message_month = _month(session, Message.created_at)
    activity = union(
        select(Order.customer_id.label("cid"), order_month.label("month")).where(
            Order.status.in_(COUNTED_ORDER_STATUSES), Order.placed_at >= w.start
        ),
        select(Conversation.customer_id.label("cid"), message_month.label("month"))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.direction == Direction.INBOUND, Message.created_at >= w.start),
    ).subquery()
    active: dict[tuple[str, str], int] = {
        (cohort, month): n
        for cohort, month, n in session.execute(
            select(joined, activity.c.month, func.count())
            .join(activity, activity.c.cid == Customer.id)
            .where(Customer.created_at >= w.start, pick.where(Customer.id))
            .group_by(joined, activity.c.month)
        ).tuples()
    }
    current = month_key(w.end)
    series = []
    for k in COHORT_AFTER:
        values: list[float | None] = []
        for cohort in w.months:
            later = add_months(cohort, k)
            ended = months_between(later, current) >= 1
            values.append(_pct(active.get((cohort, later), 0), sizes.get(cohort, 0)) if ended else None)
        series.append(Series(f"after {k} month{'s' if k > 1 else ''}", tuple(values)))
    firsts = [v for v in series[0].values if v is not None]
    return Chart(
        key="cohorts",
        title="Cohort retention: share of each month's new customers still active",
        question="Of the customers who joined in a month, how many are still buying or writing 1, 3, 6 "
        "and 12 months later?",
        kind="line",
        unit="%",
        labels=w.months,
        series=tuple(series),
        summary=f"{sum(sizes.get(m, 0) for m in w.months)} new customers in {len(w.months)} cohorts; "
        + (
            f"on average {sum(firsts) / len(firsts):.0f}% were active in their first month after joining."
            if firsts
            else "no cohort is old enough to measure yet."
        ),
    )


# ----- value -----


def _revenue(session: Session, pick: Picker, start: datetime, end: datetime) -> ColumnElement[bool]:
    return (
        Order.status.in_(COUNTED_ORDER_STATUSES)
        & (Order.placed_at >= start)
        & (Order.placed_at < end)
        & pick.where(Order.customer_id)
    )


def revenue_share(session: Session, pick: Picker, w: Window) -> Chart:
    revenue = {
        seg: Decimal(str(total or 0))
        for seg, total in session.execute(
            select(Customer.segment, func.sum(Order.total))
            .join(Order, Order.customer_id == Customer.id)
            .where(_revenue(session, pick, w.start, w.end))
            .group_by(Customer.segment)
        ).tuples()
    }
    customers = dict(
        session.execute(
            select(Customer.segment, func.count(Customer.id))
            .where(Customer.erased_at.is_(None), pick.where(Customer.id))
            .group_by(Customer.segment)
        )
        .tuples()
        .all()
    )
    all_revenue, all_customers = sum(revenue.values(), Decimal(0)), sum(customers.values())
    rev_share = [
        round(float(100 * revenue.get(s, Decimal(0)) / all_revenue), 1) if all_revenue else None
        for s in SEGMENT_ORDER
    ]
    cust_share = [_pct(customers.get(s, 0), all_customers) for s in SEGMENT_ORDER]
    mvc_rev, mvc_cust = rev_share[0], cust_share[0]
    return Chart(
        key="revenue-share",
        title="Share of customers and of revenue, by segment (the 80:20 check)",
        question="Do the most valuable customers (MVC) bring most of the revenue?",
        kind="bar",
        unit="%",
        labels=tuple(label(s) for s in SEGMENT_ORDER),
        series=(
            Series("share of customers", tuple(cust_share)),
            Series("share of revenue", tuple(rev_share)),
        ),
        summary=(
            f"MVC are {mvc_cust:.0f}% of customers and bring {mvc_rev:.0f}% of the revenue in the period."
            if mvc_rev is not None and mvc_cust is not None
            else "No revenue in the period."
        ),
    )


def _segment_history(session: Session) -> dict[int, list[tuple[datetime, Segment | None, Segment]]]:
    history: dict[int, list[tuple[datetime, Segment | None, Segment]]] = defaultdict(list)
    for cid, at, was, to in session.execute(
        select(
            SegmentChange.customer_id,
            SegmentChange.changed_at,
            SegmentChange.from_segment,
            SegmentChange.to_segment,
        ).order_by(SegmentChange.customer_id, SegmentChange.changed_at, SegmentChange.id)
    ).tuples():
        history[cid].append((as_utc(at), was, to))
    return history


def mvc_over_time(session: Session, pick: Picker, w: Window) -> Chart:
    """MVC customers at each month's end (segment history, as `segments_at` reads it) and their revenue."""
    history = _segment_history(session)
    today = dict(
        session.execute(select(Customer.id, Customer.segment).where(pick.where(Customer.id))).tuples().all()
    )
    month = _month(session, Order.placed_at)
    revenue: dict[tuple[int, str], Decimal] = {
        (cid, m): Decimal(str(total or 0))
        for cid, m, total in session.execute(
            select(Order.customer_id, month, func.sum(Order.total))
            .where(_revenue(session, pick, w.start, w.end))
            .group_by(Order.customer_id, month)
        ).tuples()
    }
    counts: list[float | None] = []
    money: list[float | None] = []
    for key in w.months:
        end = min(month_start(add_months(key, 1)), w.end)
        mvc = set()
        for cid, segment in today.items():
            changes = history.get(cid)
            if changes is None:
                at_end = segment
            else:
                before = [to for at, _, to in changes if at <= end]
                at_end = before[-1] if before else (changes[0][1] or changes[0][2])
            if at_end is Segment.MVC:
                mvc.add(cid)
        counts.append(float(len(mvc)))
        money.append(float(sum((revenue.get((cid, key), Decimal(0)) for cid in mvc), Decimal(0))))
    return Chart(
        key="mvc",
        title="MVC customers and their revenue, by month",
        question="Is the group of most valuable customers growing, and what does it bring each month?",
        kind="line",
        unit="customers / revenue",
        labels=w.months,
        series=(
            Series("MVC customers (month end)", tuple(counts)),
            Series("revenue from MVC", tuple(money), secondary=True),
        ),
        summary=f"MVC customers went from {counts[0]:.0f} to {counts[-1]:.0f}; they brought "
        f"{sum(v or 0 for v in money):,.0f} in revenue over the period.",
    )


def segment_moves(session: Session, pick: Picker, w: Window) -> Chart:
    month = _month(session, SegmentChange.changed_at)
    rows = session.execute(
        select(month, SegmentChange.from_segment, SegmentChange.to_segment, func.count())
        .where(
            SegmentChange.changed_at >= w.start,
            SegmentChange.from_segment.is_not(None),
            SegmentChange.from_segment != SegmentChange.to_segment,
            pick.where(SegmentChange.customer_id),
        )
        .group_by(month, SegmentChange.from_segment, SegmentChange.to_segment)
    ).tuples()
    counts: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for m, was, to, n in rows:
        move = f"{label(was)} → {label(to)}"
        counts[(m, move)] += n
        totals[move] += n
    top = [move for move, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_MOVES]]
    series = [Series(move, tuple(float(counts[(m, move)]) for m in w.months)) for move in top]
    rest = [move for move in totals if move not in top]
    if rest:
        series.append(
            Series("other moves", tuple(float(sum(counts[(m, r)] for r in rest)) for m in w.months))
        )
    biggest = top[0] if top else None
    return Chart(
        key="segment-moves",
        title="Segment moves per month (from → to)",
        question="Which way are customers moving between segments: up to MVC, or down?",
        kind="stacked",
        unit="customers",
        labels=w.months,
        series=tuple(series),
        summary=f"{sum(totals.values())} segment moves in the period"
        + (f"; the most common: {biggest} ({totals[biggest]})." if biggest else "."),
    )


# ----- saves -----


def _leavers_by_month(session: Session, pick: Picker, w: Window) -> dict[str, list[Leaver]]:
    return {
        m: [x for x in leavers(session=session, period=w.period(m)) if pick.keeps(x.customer_id)]
        for m in w.months
    }


def save_rate_by_month(session: Session, pick: Picker, w: Window) -> Chart:
    rows = [tally(m, found) for m, found in _leavers_by_month(session, pick, w).items()]
    asked, stayed, left = (sum(getattr(r, f) for r in rows) for f in ("asked", "stayed", "left"))
    return Chart(
        key="save-rate",
        title="Save rate by month",
        question="Of the customers who asked to leave and decided, how many did we keep?",
        kind="line",
        unit="%",
        labels=w.months,
        series=(
            Series("save rate", tuple(None if r.rate is None else round(100 * r.rate, 1) for r in rows)),
            Series("asked to leave", tuple(float(r.asked) for r in rows), secondary=True),
        ),
        summary=f"{asked} customers asked to leave; {stayed} stayed and {left} left"
        + (f" (save rate {100 * stayed / (stayed + left):.0f}%)." if stayed + left else "."),
    )


def saves_by_reason(session: Session, pick: Picker, w: Window) -> Chart:
    found = [x for x in leavers(session=session, period=w.period()) if pick.keeps(x.customer_id)]
    groups: list[tuple[object, str]] = [(r, label(r)) for r in LeaveReason] + [(None, NO_REASON)]
    rows = [(name, tally(name, [x for x in found if x.reason is reason])) for reason, name in groups]
    rows = [(name, row) for name, row in rows if row.asked]
    return Chart(
        key="saves-by-reason",
        title="Save rate by leave reason (whole period)",
        question="For which reasons to leave do our saves work, and for which not?",
        kind="bar",
        unit="%",
        labels=tuple(name for name, _ in rows),
        series=(
            Series("save rate", tuple(None if r.rate is None else round(100 * r.rate, 1) for _, r in rows)),
            Series("asked to leave", tuple(float(r.asked) for _, r in rows), secondary=True),
        ),
        summary="; ".join(f"{name}: {r.stayed} of {r.stayed + r.left} decided stayed" for name, r in rows)
        or "Nobody asked to leave in the period.",
    )


def saves_by_offer(session: Session, pick: Picker, w: Window) -> Chart:
    rows = session.execute(
        select(Offer.title, RetentionAttempt.outcome, func.count())
        .join(Offer, Offer.id == RetentionAttempt.offer_id)
        .where(
            RetentionAttempt.created_at >= w.start,
            RetentionAttempt.created_at < w.end,
            pick.where(RetentionAttempt.customer_id),
        )
        .group_by(Offer.title, RetentionAttempt.outcome)
    ).tuples()
    counts: dict[str, Counter[RetentionOutcome]] = defaultdict(Counter)
    for title, outcome, n in rows:
        counts[title][outcome] += n
    titles = sorted(counts, key=lambda t: (-sum(counts[t].values()), t))
    accepted = [counts[t][RetentionOutcome.ACCEPTED] for t in titles]
    declined = [counts[t][RetentionOutcome.DECLINED] for t in titles]
    return Chart(
        key="saves-by-offer",
        title="Offers: accepted and declined (whole period)",
        question="Which offers keep customers?",
        kind="stacked",
        unit="offers",
        labels=tuple(titles),
        series=(
            Series("accepted", tuple(float(n) for n in accepted)),
            Series("declined", tuple(float(n) for n in declined)),
            Series("no answer yet", tuple(float(counts[t][RetentionOutcome.PENDING]) for t in titles)),
        ),
        summary=f"{sum(sum(c.values()) for c in counts.values())} offers made, {sum(accepted)} accepted, "
        f"{sum(declined)} declined.",
    )


def lasting_saves(session: Session, pick: Picker, w: Window) -> Chart:
    """Saves by the month of the yes: still active 90 days on, not, or too recent to tell."""
    yes = session.execute(
        select(RetentionAttempt.customer_id, func.max(RetentionAttempt.decided_at))
        .where(
            RetentionAttempt.outcome == RetentionOutcome.ACCEPTED,
            RetentionAttempt.decided_at >= w.start,
            RetentionAttempt.decided_at < w.end,
            pick.where(RetentionAttempt.customer_id),
        )
        .group_by(RetentionAttempt.customer_id)
    ).tuples()
    saved = {cid: aggregate_time(at) for cid, at in yes if at is not None}
    lost = lost_customers(session, pick, now=w.end + SAVE_LASTS + SILENT_AFTER)  # every cancellation
    last = _last_activity(session, pick)
    counts: Counter[tuple[str, str]] = Counter()
    for cid, at in saved.items():
        judged = at + SAVE_LASTS
        if judged > w.end:
            verdict = "too recent to tell"
        else:
            gone = cid in lost and lost[cid][1] == LOST_CANCELLED and at < lost[cid][0] <= judged
            silent = cid not in last or last[cid] + SILENT_AFTER <= judged
            verdict = "not active 90 days on" if gone or silent else "still active 90 days on"
        counts[(month_key(at), verdict)] += 1
    kinds = ("still active 90 days on", "not active 90 days on", "too recent to tell")
    lasted, judged_n = (
        sum(counts[(m, kinds[0])] for m in w.months),
        sum(counts[(m, k)] for m in w.months for k in kinds[:2]),
    )
    return Chart(
        key="lasting-saves",
        title="Saved customers still active 90 days later",
        question="Do the customers we saved stay, or do they leave anyway?",
        kind="stacked",
        unit="customers",
        labels=w.months,
        series=tuple(Series(k, tuple(float(counts[(m, k)]) for m in w.months)) for k in kinds),
        summary=(
            f"Of {judged_n} saves at least 90 days old, {lasted} were still active 90 days on "
            f"({_pct(lasted, judged_n):.0f}%)."
            if judged_n
            else f"{len(saved)} saves in the period; none is 90 days old yet, so none can be judged."
        ),
    )


def win_back(session: Session, pick: Picker, w: Window) -> Chart:
    month = _month(session, DriftEpisode.started_at)
    counts: Counter[tuple[str, str | None]] = Counter()
    for m, outcome, n in session.execute(
        select(month, DriftEpisode.outcome, func.count())
        .where(DriftEpisode.started_at >= w.start, pick.where(DriftEpisode.customer_id))
        .group_by(month, DriftEpisode.outcome)
    ).tuples():
        counts[(m, outcome)] += n
    back = [counts[(m, "came_back")] for m in w.months]
    lapsed = [counts[(m, "lapsed")] for m in w.months]
    began = [sum(n for (mm, _), n in counts.items() if mm == m) for m in w.months]
    return Chart(
        key="win-back",
        title="Win-back rate: drifting customers who came back",
        question="When a customer drifts away, how often do we win them back?",
        kind="line",
        unit="%",
        labels=w.months,
        series=(
            Series("win-back rate", tuple(_pct(b, b + lap) for b, lap in zip(back, lapsed, strict=True))),
            Series("began drifting", tuple(float(n) for n in began), secondary=True),
        ),
        summary=f"{sum(began)} drift episodes began; {sum(back)} came back, {sum(lapsed)} lapsed"
        + (
            f" (win-back rate {_pct(sum(back), sum(back) + sum(lapsed)):.0f}%)."
            if sum(back) + sum(lapsed)
            else "."
        ),
    )


# ----- satisfaction → loyalty -----


def csat_by_month(session: Session, pick: Picker, w: Window) -> Chart:
    month = _month(session, Survey.created_at)
    found = {
        m: (n, avg)
        for m, n, avg in session.execute(
            select(month, func.count(Survey.id), func.avg(Survey.score))
            .where(Survey.score.is_not(None), Survey.created_at >= w.start, pick.where(Survey.customer_id))
            .group_by(month)
        ).tuples()
    }
    averages = [round(float(found[m][1]), 2) if m in found else None for m in w.months]
    ratings = sum(found[m][0] for m in w.months if m in found)
    return Chart(
        key="csat",
        title="CSAT by month (average rating, 1–5)",
        question="Are customers happier with us over time?",
        kind="line",
        unit="score",
        labels=w.months,
        series=(
            Series("average rating", tuple(averages)),
            Series(
                "ratings", tuple(float(found[m][0]) if m in found else 0.0 for m in w.months), secondary=True
            ),
        ),
        summary=f"{ratings} ratings in the period"
        + (
            f"; the average went from {next(a for a in averages if a is not None):.2f} to "
            f"{next(a for a in reversed(averages) if a is not None):.2f}."
            if ratings
            else "."
        ),
    )


def _rating_group(score: int) -> str:
    return "5" if score >= 5 else "4" if score == 4 else "3 or less"


def repeat_by_rating(session: Session, pick: Picker, w: Window) -> Chart:
    """Customers by their latest rating in the period: the share who ordered within 60 days of it."""
    cutoff = w.end - REPEAT_WITHIN
    latest = (
        select(
            Survey.customer_id.label("cid"),
            Survey.score.label("score"),
            Survey.created_at.label("rated_at"),
            func.row_number()
            .over(partition_by=Survey.customer_id, order_by=(Survey.created_at.desc(), Survey.id.desc()))
            .label("n"),
        )
        .where(
            Survey.score.is_not(None),
            Survey.created_at >= w.start,
            Survey.created_at < w.end,
            pick.where(Survey.customer_id),
        )
        .subquery()
    )
    rows = session.execute(
        select(latest.c.cid, latest.c.score, latest.c.rated_at, func.min(Order.placed_at))
        .outerjoin(
            Order,
            (Order.customer_id == latest.c.cid)
            & (Order.placed_at > latest.c.rated_at)
            & Order.status.in_(COUNTED_ORDER_STATUSES),
        )
        .where(latest.c.n == 1)
        .group_by(latest.c.cid, latest.c.score, latest.c.rated_at)
    ).tuples()
    rated: Counter[str] = Counter()
    repeat: Counter[str] = Counter()
    for _, score, rated_at, first_order in rows:
        at = aggregate_time(rated_at)
        if at > cutoff:
            continue  # too recent: 60 days have not passed
        group = _rating_group(int(score))
        rated[group] += 1
        after = aggregate_time(first_order)
        if after is not None and after <= at + REPEAT_WITHIN:
            repeat[group] += 1
    shares = [_pct(repeat[g], rated[g]) for g in RATING_GROUPS]
    return Chart(
        key="repeat-by-rating",
        title="Repeat purchase within 60 days, by the customer's latest rating",
        question="Does satisfaction become loyalty: do happier customers buy again more often?",
        kind="bar",
        unit="%",
        labels=tuple(f"rated {g}" for g in RATING_GROUPS),
        series=(
            Series("ordered again within 60 days", tuple(shares)),
            Series("customers", tuple(float(rated[g]) for g in RATING_GROUPS), secondary=True),
        ),
        summary="; ".join(
            f"rated {g}: {repeat[g]} of {rated[g]} ordered again" for g in RATING_GROUPS if rated[g]
        )
        or "No rating old enough (60 days) in the period.",
    )


# ----- service -----


def sla_by_month(session: Session, pick: Picker, w: Window) -> Chart:
    month = _month(session, Complaint.resolved_at)
    met = func.sum(case((Complaint.resolved_at <= Complaint.sla_due_at, 1), else_=0))
    found = {
        m: (int(n), int(k or 0))
        for m, n, k in session.execute(
            select(month, func.count(Complaint.id), met)
            .where(
                Complaint.resolved_at.is_not(None),
                Complaint.resolved_at >= w.start,
                pick.where(Complaint.customer_id),
            )
            .group_by(month)
        ).tuples()
    }
    total, kept = (sum(found[m][i] for m in w.months if m in found) for i in (0, 1))
    return Chart(
        key="sla",
        title="Complaint cases resolved in the promised time, by month",
        question="Do we keep the time we promise customers?",
        kind="line",
        unit="%",
        labels=w.months,
        series=(
            Series(
                "SLA met", tuple(_pct(found[m][1], found[m][0]) if m in found else None for m in w.months)
            ),
            Series(
                "cases resolved",
                tuple(float(found[m][0]) if m in found else 0.0 for m in w.months),
                secondary=True,
            ),
        ),
        summary=f"{kept} of {total} cases resolved in the period were resolved in the promised time"
        + (f" ({_pct(kept, total):.0f}%)." if total else "."),
    )


def times_by_team(session: Session, pick: Picker, w: Window) -> Chart:
    rows = session.execute(
        select(
            Complaint.team, Complaint.created_at, Complaint.first_response_at, Complaint.resolved_at
        ).where(
            Complaint.created_at >= w.start, Complaint.created_at < w.end, pick.where(Complaint.customer_id)
        )
    ).tuples()
    first: dict[str, list[float]] = defaultdict(list)
    resolve: dict[str, list[float]] = defaultdict(list)
    teams: set[str] = set()
    for team, filed, responded, resolved in rows:
        teams.add(team)
        if responded is not None:
            first[team].append((as_utc(responded) - as_utc(filed)).total_seconds() / 3600)
        if resolved is not None:
            resolve[team].append((as_utc(resolved) - as_utc(filed)).total_seconds() / 3600)
    ordered = sorted(teams)
    return Chart(
        key="team-times",
        title="Median hours to first response and to resolution, by team",
        question="Which teams answer and resolve complaints quickly, and which keep customers waiting?",
        kind="bar",
        unit="hours",
        labels=tuple(label(t, "Team") for t in ordered),
        series=(
            Series("first response (median h)", tuple(_hours(middle(first[t])) for t in ordered)),
            Series("resolution (median h)", tuple(_hours(middle(resolve[t])) for t in ordered)),
        ),
        summary="; ".join(
            f"{label(t, 'Team')}: resolved in {_fmt(_hours(middle(resolve[t])))} h (median)"
            for t in ordered
            if resolve[t]
        )
        or "No complaint cases filed in the period.",
    )


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def csat_by_agent(session: Session, pick: Picker, w: Window) -> Chart:
    """Ratings after a chat an agent handled or about a case they owned (the chat first)."""
    agent = func.coalesce(Handoff.agent_id, Complaint.owner_id)
    rows = session.execute(
        select(Agent.display_name, func.count(Survey.id), func.avg(Survey.score))
        .select_from(Survey)
        .outerjoin(Handoff, Handoff.id == Survey.handoff_id)
        .outerjoin(Complaint, Complaint.id == Survey.complaint_id)
        .join(Agent, Agent.id == agent)
        .where(
            Survey.score.is_not(None),
            Survey.created_at >= w.start,
            Survey.created_at < w.end,
            pick.where(Survey.customer_id),
        )
        .group_by(Agent.id, Agent.display_name)
        .order_by(Agent.display_name)
    ).tuples()
    found = [(name, int(n), round(float(avg), 2)) for name, n, avg in rows]
    return Chart(
        key="csat-agents",
        title="CSAT per agent (admins only)",
        question="Whose customers leave happy?",
        kind="bar",
        unit="score",
        labels=tuple(name for name, _, _ in found),
        series=(
            Series("average rating", tuple(avg for _, _, avg in found)),
            Series("ratings", tuple(float(n) for _, n, _ in found), secondary=True),
        ),
        summary="; ".join(f"{name}: {avg:.2f} from {n}" for name, n, avg in found)
        or "No ratings about an agent's chat or case in the period.",
    )


def csv_rows(chart: Chart) -> Iterable[Sequence[str]]:
    """The chart as CSV rows: the x label, then one column per series."""
    return chart.rows()
