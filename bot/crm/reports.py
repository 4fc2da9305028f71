"""Loyalty reports for marketers: segments and churn, retention saves, CSAT, complaints, handoffs.

Every function takes the session and a `Period` (the half-open window [start, end)) and returns
plain dataclasses; the console renders them and exports them as CSV. Rates are None when nothing
was there to count, never a division by zero. Medians are taken in Python, the same on SQLite and
PostgreSQL. Segments are the customers' segments today, not at the time of the event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    HANDOFF_CALLBACK,
    Complaint,
    ComplaintCategory,
    Consent,
    ConsentPurpose,
    Customer,
    Handoff,
    InteractionEvent,
    LeaveReason,
    Offer,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Severity,
    Subscription,
    Survey,
)
from bot.crm.surveys import LOW_SCORE

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
SCORES = (1, 2, 3, 4, 5)
NO_OFFER = "no offer fitted"
NO_REASON = "not given"


class InvalidPeriod(ValueError):
    """The period is not one the reports offer."""


@dataclass(frozen=True)
class Period:
    days: int
    start: datetime
    end: datetime

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def parse_days(raw: str | None) -> int:
    """The number of days asked for (the default when nothing is asked); InvalidPeriod otherwise."""
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if not raw.isdigit() or int(raw) not in PERIODS:
        raise InvalidPeriod(f"choose a period of {', '.join(map(str, PERIODS[:-1]))} or {PERIODS[-1]} days")
    return int(raw)


def last_days(days: int, *, now: datetime) -> Period:
    """The `days` days up to `now`."""
    if days not in PERIODS:
        raise InvalidPeriod(f"no report for {days} days")
    return Period(days=days, start=now - timedelta(days=days), end=now)


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# ----- loyalty: segments and churn -----


@dataclass(frozen=True)
class SegmentRow:
    segment: Segment
    customers: int
    marketing_consent: int  # of them, agreed to marketing messages
    cancellations: int  # subscriptions they asked to cancel in the period

    share: float | None = None  # of all customers


@dataclass(frozen=True)
class Loyalty:
    customers: int  # not erased, today
    new_customers: int  # created in the period
    cancellations: int
    segments: list[SegmentRow]


def loyalty(*, session: Session, period: Period) -> Loyalty:
    """Customers by segment today, and who asked to cancel in the period."""
    live = Customer.erased_at.is_(None)
    counts = dict(
        session.execute(select(Customer.segment, func.count()).where(live).group_by(Customer.segment)).all()
    )
    consenting = dict(
        session.execute(
            select(Customer.segment, func.count())
            .join(Consent, Consent.customer_id == Customer.id)
            .where(live, Consent.purpose == ConsentPurpose.MARKETING, Consent.granted.is_(True))
            .group_by(Customer.segment)
        ).all()
    )
    cancelled = Counter(
        session.scalars(
            select(Customer.segment)
            .join(Subscription, Subscription.customer_id == Customer.id)
            .where(
                or_(
                    _within(Subscription.cancel_requested_at, period),
                    _within(Subscription.cancelled_at, period),
                )
            )
        ).all()
    )
    total = sum(counts.values())
    rows = [
        SegmentRow(
            segment=segment,
            customers=counts.get(segment, 0),
            marketing_consent=consenting.get(segment, 0),
            cancellations=cancelled.get(segment, 0),
            share=rate(counts.get(segment, 0), total),
        )
        for segment in Segment
    ]
    new = session.scalar(select(func.count(Customer.id)).where(live, _within(Customer.created_at, period)))
    return Loyalty(
        customers=total, new_customers=int(new or 0), cancellations=sum(cancelled.values()), segments=rows
    )


# ----- retention saves -----


@dataclass(frozen=True)
class SaveRow:
    """Who was asked to stay and who stayed; for offers, offers answered and offers accepted."""

    label: str
    asked: int
    saved: int
    pending: int = 0  # offers still waiting for an answer (not in the rate)

    @property
    def rate(self) -> float | None:
        return rate(self.saved, self.asked)


@dataclass(frozen=True)
class Retention:
    attempts: int  # offers made (or tried) in the period
    accepted: int
    pending: int
    overall: SaveRow  # by customer: saved if they accepted any offer in the period
    by_reason: list[SaveRow]
    by_segment: list[SaveRow]
    by_offer: list[SaveRow]  # by offer: accepted of answered


def retention(*, session: Session, period: Period) -> Retention:
    """Save attempts in the period; a customer counts once per group, saved if any offer was accepted."""
    rows = session.execute(
        select(
            RetentionAttempt.customer_id,
            RetentionAttempt.reason,
            RetentionAttempt.outcome,
            Customer.segment,
            Offer.code,
            Offer.title,
        )
        .join(Customer, Customer.id == RetentionAttempt.customer_id)
        .outerjoin(Offer, Offer.id == RetentionAttempt.offer_id)
        .where(_within(RetentionAttempt.created_at, period))
    ).all()
    outcomes = [row.outcome for row in rows]
    by_reason = _saves(
        ((r.reason.value if r.reason else NO_REASON, r.customer_id, r.outcome) for r in rows),
        order=[reason.value for reason in LeaveReason] + [NO_REASON],
    )
    by_segment = _saves(
        ((r.segment.value, r.customer_id, r.outcome) for r in rows), order=[s.value for s in Segment]
    )
    # Offers count every attempt (key: the attempt's row number), not each customer once; grouped by
    # code, since two offers may share a title, and shown by title.
    titles = {r.code: r.title for r in rows if r.code is not None}
    by_offer = [
        replace(row, label=titles.get(row.label, NO_OFFER))
        for row in _saves(((r.code or "", i, r.outcome) for i, r in enumerate(rows)), order=None)
    ]
    overall = _saves((("all", r.customer_id, r.outcome) for r in rows), order=None)
    return Retention(
        attempts=len(rows),
        accepted=outcomes.count(RetentionOutcome.ACCEPTED),
        pending=outcomes.count(RetentionOutcome.PENDING),
        overall=overall[0] if overall else SaveRow("all", 0, 0),
        by_reason=by_reason,
        by_segment=by_segment,
        by_offer=by_offer,
    )


def _saves(items: Iterable[tuple[str, int, RetentionOutcome]], *, order: list[str] | None) -> list[SaveRow]:
    """(group, who, outcome) → one row per group: who answered, who accepted, offers pending."""
    answered: dict[str, set[int]] = defaultdict(set)
    saved: dict[str, set[int]] = defaultdict(set)
    pending: Counter[str] = Counter()
    for group, who, outcome in items:
        if outcome is RetentionOutcome.PENDING:
            pending[group] += 1
            continue
        answered[group].add(who)
        if outcome is RetentionOutcome.ACCEPTED:
            saved[group].add(who)
    groups = set(answered) | set(pending)
    ordered = (
        [g for g in order if g in groups]
        if order is not None
        else sorted(groups, key=lambda g: (-len(answered[g]), g))
    )
    return [SaveRow(g, len(answered[g]), len(saved[g]), pending[g]) for g in ordered]


# ----- satisfaction -----

SOURCES = ("after a handoff", "after a complaint", "other")


@dataclass(frozen=True)
class SourceRow:
    source: str
    answers: int
    average: float | None


@dataclass(frozen=True)
class Satisfaction:
    answers: int
    average: float | None
    distribution: dict[int, int]  # score 1–5 → answers
    low: int  # scores of LOW_SCORE or less
    recovery_cases: int  # of the low scores, those that opened a recovery case
    by_source: list[SourceRow]


def satisfaction(*, session: Session, period: Period) -> Satisfaction:
    """CSAT answers in the period (comments without a score are not answers)."""
    surveys = session.execute(
        select(Survey.id, Survey.score, Survey.complaint_id, Survey.handoff_id).where(
            Survey.score.is_not(None), _within(Survey.created_at, period)
        )
    ).all()
    scores = [s.score for s in surveys]
    distribution = Counter(scores)
    sources: dict[str, list[int]] = defaultdict(list)
    for survey in surveys:
        sources[_source(survey.complaint_id, survey.handoff_id)].append(survey.score)
    low = {s.id for s in surveys if s.score <= LOW_SCORE}
    return Satisfaction(
        answers=len(scores),
        average=_mean(scores),
        distribution={score: distribution.get(score, 0) for score in SCORES},
        low=len(low),
        recovery_cases=len(low & _surveys_with_recovery(session=session, period=period)),
        by_source=[
            SourceRow(name, len(sources[name]), _mean(sources[name])) for name in SOURCES if sources[name]
        ],
    )


def _source(complaint_id: int | None, handoff_id: int | None) -> str:
    if handoff_id is not None:
        return SOURCES[0]
    return SOURCES[1] if complaint_id is not None else SOURCES[2]


def _surveys_with_recovery(*, session: Session, period: Period) -> set[int]:
    """Survey ids whose rating opened a recovery case: the `csat` event links the two."""
    events = session.scalars(
        select(InteractionEvent.data).where(
            InteractionEvent.kind == "csat", InteractionEvent.created_at >= period.start
        )
    )
    return {int(data["survey_id"]) for data in events if data.get("recovery_case") and data.get("survey_id")}


def _mean(values: list[int]) -> float | None:
    return sum(values) / len(values) if values else None


# ----- complaints -----


@dataclass(frozen=True)
class CountRow:
    label: str
    opened: int
    resolved: int


@dataclass(frozen=True)
class Complaints:
    opened: int
    resolved: int  # resolved in the period, whenever opened
    resolved_within_sla: int
    median_hours_to_resolve: float | None
    by_category: list[CountRow]
    by_severity: list[CountRow]

    @property
    def sla_share(self) -> float | None:
        return rate(self.resolved_within_sla, self.resolved)


def complaints(*, session: Session, period: Period) -> Complaints:
    """Complaints opened and resolved in the period, the SLA kept, and how long resolving took."""
    opened = session.execute(
        select(Complaint.category, Complaint.severity).where(_within(Complaint.created_at, period))
    ).all()
    resolved = session.execute(
        select(
            Complaint.category,
            Complaint.severity,
            Complaint.created_at,
            Complaint.resolved_at,
            Complaint.sla_due_at,
        ).where(_within(Complaint.resolved_at, period))
    ).all()
    hours = [(r.resolved_at - r.created_at).total_seconds() / 3600 for r in resolved]
    return Complaints(
        opened=len(opened),
        resolved=len(resolved),
        resolved_within_sla=sum(1 for r in resolved if r.resolved_at <= r.sla_due_at),
        median_hours_to_resolve=median(hours) if hours else None,
        by_category=_counts(
            [o.category.value for o in opened], [r.category.value for r in resolved], ComplaintCategory
        ),
        by_severity=_counts(
            [o.severity.value for o in opened], [r.severity.value for r in resolved], Severity
        ),
    )


def _counts(
    opened: list[str], resolved: list[str], vocabulary: Iterable[ComplaintCategory | Severity]
) -> list[CountRow]:
    o, r = Counter(opened), Counter(resolved)
    return [CountRow(v.value, o[v.value], r[v.value]) for v in vocabulary if o[v.value] or r[v.value]]


# ----- handoffs -----


@dataclass(frozen=True)
class Handoffs:
    requested: int
    callbacks: int  # filed for later rather than taken over live
    claimed: int
    median_minutes_to_claim: float | None


def handoffs(*, session: Session, period: Period) -> Handoffs:
    """Handoffs requested in the period and how long customers waited for a person."""
    rows = session.execute(
        select(Handoff.mode, Handoff.requested_at, Handoff.claimed_at).where(
            _within(Handoff.requested_at, period)
        )
    ).all()
    waits = [(r.claimed_at - r.requested_at).total_seconds() / 60 for r in rows if r.claimed_at is not None]
    return Handoffs(
        requested=len(rows),
        callbacks=sum(1 for r in rows if r.mode == HANDOFF_CALLBACK),
        claimed=len(waits),
        median_minutes_to_claim=median(waits) if waits else None,
    )


# ----- the whole report -----


@dataclass(frozen=True)
class Report:
    period: Period
    loyalty: Loyalty
    retention: Retention
    satisfaction: Satisfaction
    complaints: Complaints
    handoffs: Handoffs

    @property
    def empty(self) -> bool:
        """Nothing in the CRM to report on: no customers and nothing happened in the period."""
        return self.loyalty.customers == 0 and not self.activity

    @property
    def activity(self) -> int:
        return (
            self.retention.attempts
            + self.satisfaction.answers
            + self.complaints.opened
            + self.complaints.resolved
            + self.handoffs.requested
            + self.loyalty.cancellations
        )


def report(*, session: Session, period: Period) -> Report:
    return Report(
        period=period,
        loyalty=loyalty(session=session, period=period),
        retention=retention(session=session, period=period),
        satisfaction=satisfaction(session=session, period=period),
        complaints=complaints(session=session, period=period),
        handoffs=handoffs(session=session, period=period),
    )


def csv_rows(report: Report) -> Iterator[tuple[str, str, str, str]]:
    """The report as (section, group, figure, value) rows; rates as fractions with 4 decimals."""
    r = report
    yield "period", "", "start", r.period.start.isoformat()
    yield "period", "", "end", r.period.end.isoformat()
    yield "loyalty", "all", "customers", str(r.loyalty.customers)
    yield "loyalty", "all", "new customers", str(r.loyalty.new_customers)
    yield "loyalty", "all", "cancellations", str(r.loyalty.cancellations)
    for s in r.loyalty.segments:
        yield "loyalty", s.segment.value, "customers", str(s.customers)
        yield "loyalty", s.segment.value, "share", _number(s.share)
        yield "loyalty", s.segment.value, "marketing consent", str(s.marketing_consent)
        yield "loyalty", s.segment.value, "cancellations", str(s.cancellations)
    yield "retention", "all", "attempts", str(r.retention.attempts)
    yield "retention", "all", "accepted offers", str(r.retention.accepted)
    yield "retention", "all", "pending offers", str(r.retention.pending)
    for section, rows in (
        ("retention", [r.retention.overall]),
        ("retention by reason", r.retention.by_reason),
        ("retention by segment", r.retention.by_segment),
        ("retention by offer", r.retention.by_offer),
    ):
        for row in rows:
            yield section, row.label, "asked", str(row.asked)
            yield section, row.label, "saved", str(row.saved)
            yield section, row.label, "save rate", _number(row.rate)
    sat = r.satisfaction
    yield "satisfaction", "all", "answers", str(sat.answers)
    yield "satisfaction", "all", "average", _number(sat.average)
    for score, n in sat.distribution.items():
        yield "satisfaction", "all", f"score {score}", str(n)
    yield "satisfaction", "all", "low scores", str(sat.low)
    yield "satisfaction", "all", "recovery cases opened", str(sat.recovery_cases)
    for source in sat.by_source:
        yield "satisfaction by source", source.source, "answers", str(source.answers)
        yield "satisfaction by source", source.source, "average", _number(source.average)
    c = r.complaints
    yield "complaints", "all", "opened", str(c.opened)
    yield "complaints", "all", "resolved", str(c.resolved)
    yield "complaints", "all", "resolved within SLA", _number(c.sla_share)
    yield "complaints", "all", "median hours to resolve", _number(c.median_hours_to_resolve)
    for section, counts in (
        ("complaints by category", c.by_category),
        ("complaints by severity", c.by_severity),
    ):
        for row in counts:
            yield section, row.label, "opened", str(row.opened)
            yield section, row.label, "resolved", str(row.resolved)
    h = r.handoffs
    yield "handoffs", "all", "requested", str(h.requested)
    yield "handoffs", "all", "callbacks", str(h.callbacks)
    yield "handoffs", "all", "claimed", str(h.claimed)
    yield "handoffs", "all", "median minutes to claim", _number(h.median_minutes_to_claim)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _within(column: object, period: Period) -> object:
    return (column >= period.start) & (column < period.end)  # type: ignore[operator]
