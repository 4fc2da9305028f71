"""Reports for marketers and team leads: customers and who asked to leave, saves and offers, CSAT,
complaint cases, handoffs.

Every figure is defined once, in `GLOSSARY` (the page shows it beside the figures), and computed once,
here: a figure that appears in two places (who asked to leave, on Loyalty and on Retention) is the
same value from the same function. Groups add up: each customer who asked to leave is counted in
exactly one outcome, one leave reason and one segment; each case in one category, one severity, one
team and one cause; shares are whole percentages that sum to 100 (largest remainders).

Every function takes the session and a `Period` (the half-open window [start, end)) and returns
plain dataclasses; the console renders them and exports them as CSV. Rates are None when nothing was
there to count, never a division by zero. Medians and 90th percentiles are taken in Python from the
rows (nearest rank for the percentile), so they are the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from statistics import median

from sqlalchemy import ColumnElement, SQLColumnExpression, func, select
from sqlalchemy.orm import Session

from bot.crm.cases import late_key
from bot.crm.complaints import OPEN_STATUSES
from bot.crm.labels import label
from bot.crm.models import (
    HANDOFF_CALLBACK,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Consent,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
    DriftEpisode,
    Handoff,
    InteractionEvent,
    LeaveReason,
    Offer,
    OrderLine,
    OutreachKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Severity,
    Subscription,
    Survey,
    Team,
)
from bot.crm.segments import segments_at
from bot.crm.surveys import LOW_SCORE

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
SCORES = (1, 2, 3, 4, 5)
NO_REASON = "not given"
NO_PRODUCT = "no order named"
TOP_CAUSES = 10  # the rest are summed into one row, so the causes still add up to the cases filed

# term → what it counts, over which period, which customers. The page shows these words.
GLOSSARY: dict[str, str] = {
    "Customers": "Customer records that exist at the end of the period and are not erased, by their "
    "segment today. Every other figure counts what happened in the period, to whoever it happened to "
    "(erased customers included: their records stay for the books).",
    "New customers": "Customers whose record was created in the period.",
    "Share": "A group's part of its total, in whole percent; the shares of one table add up to 100%.",
    "Asked to leave": "Customers who, in the period, were offered something to stay or had their "
    "cancellation recorded: every wish to cancel gets a save attempt. Each customer counts once, with "
    "the leave reason of their latest attempt and the segment they were in when they first asked in the "
    "period.",
    "Stayed": "Of those who asked to leave, customers whose latest answer in the period was yes to an "
    "offer (and who did not ask to cancel again after it).",
    "Left": "Of those who asked to leave, customers whose cancellation was recorded in the period after "
    "their last yes, if any.",
    "Not decided yet": "Of those who asked to leave, customers with an offer still unanswered, or who "
    "said no without the cancellation being recorded yet. Stayed + left + not decided yet = asked to leave.",
    "Save rate": "Stayed ÷ (stayed + left): of the customers who decided, the share who stayed.",
    "Offers made": "Every offer the bot put to a customer in the period: a customer may hear two in "
    "one conversation, and accept offers in two conversations, so accepted offers can outnumber the "
    "customers who stayed. Offers are counted one by one; two offers with the same title stay apart.",
    "Nothing fitted": "Save attempts where no offer suited the reason and the segment: the customer's no "
    "was respected at once.",
    "Ratings": "CSAT answers (1–5) given in the period; a comment without a score is not a rating. "
    "Low: 1 or 2. Asked after a handoff, after a complaint, or otherwise (every rating is in one).",
    "Recovery case": "A case opened by a low rating, so that someone calls the unhappy customer back.",
    "Cases filed": "Complaint cases filed in the period, by category, severity and owning team (team and "
    "severity as they are now).",
    "Cases resolved": "Cases whose current resolution was given in the period, whenever filed (a reopened "
    "case counts again when it is resolved again).",
    "First response": "From filing to the first time a person took the case, asked the customer or "
    "resolved it, for the cases filed in the period; cases nobody has responded to yet are counted apart.",
    "Time to resolve": "From filing to the resolution, for the cases resolved in the period.",
    "Median and p90": "Half the cases took less than the median; nine in ten took no longer than the "
    "90th percentile (nearest rank).",
    "Promise kept": "A case resolved in the period by the time promised to the customer, without the "
    "promise being moved.",
    "Promise broken": "A case resolved in the period after its promised time, or whose promise was "
    "moved, or still open although its promised time passed in the period. Kept + broken = the "
    "promises that came due in the period (open cases not due yet are not counted).",
    "Told in time": "Of the broken promises, cases whose customer was sent the SLA clock's honest update "
    "(we said …, we need until …, because …) before the first promised time passed.",
    "Revisit answered": 'Customers who answered "is everything fine now?" in the period: fine (the case '
    "closes) or not (it reopens). Reopen rate: not fine ÷ answered.",
    "Recurring causes": "Cases filed in the period by category and product (the product of the largest "
    "line of the order concerned): the combinations seen more than once, then all the others "
    "together; each case counts once.",
    "Churn risk": "The chance, from 0 to 100%, that a customer asks to cancel or goes silent soon, "
    "computed every night and on every event that changes it from their own behaviour (orders against "
    "their own rhythm, membership, complaints, ratings, messages left unanswered); the reasons are the "
    "signs that made it, strongest first.",
    "Drifting": "A customer overdue against their own buying rhythm by a clear margin (twice their usual "
    "interval between orders), silent past their segment's threshold when they have no rhythm yet, or "
    "leaving our last two messages unanswered; our own messages never count as theirs. Each spell is one "
    "episode, counted in the period it began, with the segment it began in. MVC and MCC customers get a "
    "task for a person; standard customers a check-in through the consent, quiet-hours and cap rules; "
    "below-zero customers are not chased.",
    "Came back": "The customer ordered or wrote to us within 30 days of the episode's start; lapsed: "
    "30 days passed without either. Came-back rate: came back ÷ (came back + lapsed); episodes still "
    "within their 30 days are counted apart.",
    "Handoffs": "Requests for a person made in the period: live, or filed as a callback for later. "
    "Wait: from the request until a person took it.",
}


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


def whole_percentages(counts: Sequence[int]) -> list[int | None]:
    """Each count's share in whole percent, summing to exactly 100 (largest remainders); None when
    there is nothing to share."""
    total = sum(counts)
    if not total:
        return [None] * len(counts)
    exact = [100 * c / total for c in counts]
    shares = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(counts)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: 100 - sum(shares)]:
        shares[i] += 1
    return list(shares)


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value no less than 90% of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def middle(values: Sequence[float]) -> float | None:
    return median(values) if values else None


# ----- who asked to leave, and what they decided -----


class LeaveOutcome(str, enum.Enum):
    """Where a customer who asked to leave stands at the end of the period."""

    STAYED = "stayed"
    LEFT = "left"
    UNDECIDED = "undecided"


# When two things happen at the same moment, the later step of the conversation wins.
_STEP = {LeaveOutcome.UNDECIDED: 0, LeaveOutcome.STAYED: 1, LeaveOutcome.LEFT: 2}


@dataclass(frozen=True)
class Leaver:
    customer_id: int
    segment: Segment
    reason: LeaveReason | None  # of their latest save attempt in the period
    outcome: LeaveOutcome


def leavers(*, session: Session, period: Period) -> list[Leaver]:
    """Every customer who asked to leave in the period, once, with where they stand now."""
    attempts = session.execute(
        select(
            RetentionAttempt.id,
            RetentionAttempt.customer_id,
            RetentionAttempt.reason,
            RetentionAttempt.outcome,
            RetentionAttempt.created_at,
            RetentionAttempt.decided_at,
        ).where(_within(RetentionAttempt.created_at, period))
    ).all()
    requests = session.execute(
        select(Subscription.customer_id, Subscription.cancel_requested_at).where(
            _within(Subscription.cancel_requested_at, period)
        )
    ).all()
    steps: dict[int, list[tuple[datetime, int, LeaveOutcome]]] = defaultdict(list)
    reasons: dict[int, tuple[datetime, int, LeaveReason | None]] = {}
    for a in attempts:
        outcome = LeaveOutcome.STAYED if a.outcome is RetentionOutcome.ACCEPTED else LeaveOutcome.UNDECIDED
        moment = a.decided_at or a.created_at
        steps[a.customer_id].append((moment, _STEP[outcome], outcome))
        if a.customer_id not in reasons or (a.created_at, a.id) > reasons[a.customer_id][:2]:
            reasons[a.customer_id] = (a.created_at, a.id, a.reason)
    for customer_id, moment in requests:
        steps[customer_id].append((moment, _STEP[LeaveOutcome.LEFT], LeaveOutcome.LEFT))
    # The segment they were in when they first asked, not today's: a lost MVC may be standard by now.
    segments = segments_at(
        session=session, moments={cid: min(step[0] for step in found) for cid, found in steps.items()}
    )
    return [
        Leaver(
            customer_id=customer_id,
            segment=segments[customer_id],
            reason=reasons[customer_id][2] if customer_id in reasons else None,
            outcome=max(found, key=lambda step: step[:2])[2],
        )
        for customer_id, found in sorted(steps.items())
    ]


@dataclass(frozen=True)
class LeaveRow:
    """Customers of one group who asked to leave, split by where they stand."""

    group: object  # a Segment, a LeaveReason, NO_REASON or "all"
    asked: int
    stayed: int
    left: int
    undecided: int

    @property
    def rate(self) -> float | None:
        """The save rate: of those who decided, the share who stayed."""
        return rate(self.stayed, self.stayed + self.left)


def tally(group: object, found: Iterable[Leaver]) -> LeaveRow:
    outcomes = Counter(leaver.outcome for leaver in found)
    return LeaveRow(
        group=group,
        asked=sum(outcomes.values()),
        stayed=outcomes[LeaveOutcome.STAYED],
        left=outcomes[LeaveOutcome.LEFT],
        undecided=outcomes[LeaveOutcome.UNDECIDED],
    )


# ----- loyalty: customers by segment -----


@dataclass(frozen=True)
class SegmentRow:
    segment: Segment
    customers: int
    share: int | None  # whole percent of all customers
    marketing_consent: int  # of them, agreed to marketing messages
    leaving: LeaveRow  # customers of this segment who asked to leave in the period


@dataclass(frozen=True)
class Loyalty:
    customers: int
    new_customers: int
    segments: list[SegmentRow]


def loyalty(*, session: Session, period: Period, leaving: Sequence[Leaver]) -> Loyalty:
    """Customers by segment today, with their consent and who of them asked to leave in the period."""
    live = Customer.erased_at.is_(None) & (Customer.created_at < period.end)
    counts = dict(
        session.execute(select(Customer.segment, func.count()).where(live).group_by(Customer.segment))
        .tuples()
        .all()
    )
    consenting = dict(
        session.execute(
            select(Customer.segment, func.count())
            .join(Consent, Consent.customer_id == Customer.id)
            .where(live, Consent.purpose == ConsentPurpose.MARKETING, Consent.granted.is_(True))
            .group_by(Customer.segment)
        )
        .tuples()
        .all()
    )
    shares = whole_percentages([counts.get(segment, 0) for segment in Segment])
    rows = [
        SegmentRow(
            segment=segment,
            customers=counts.get(segment, 0),
            share=share,
            marketing_consent=consenting.get(segment, 0),
            leaving=tally(segment, (x for x in leaving if x.segment is segment)),
        )
        for segment, share in zip(Segment, shares, strict=True)
    ]
    new = session.scalar(select(func.count(Customer.id)).where(live, _within(Customer.created_at, period)))
    return Loyalty(customers=sum(counts.values()), new_customers=int(new or 0), segments=rows)


# ----- retention: saves and offers -----


@dataclass(frozen=True)
class OfferRow:
    """One offer of the catalogue: how often it was made in the period and what customers answered."""

    code: str
    title: str  # with what tells it apart when two offers share a title
    made: int
    accepted: int
    declined: int
    unanswered: int

    @property
    def rate(self) -> float | None:
        """Accepted of answered."""
        return rate(self.accepted, self.accepted + self.declined)


@dataclass(frozen=True)
class Retention:
    overall: LeaveRow
    by_reason: list[LeaveRow]
    by_segment: list[LeaveRow]
    offers: list[OfferRow]
    nothing_fitted: int

    @property
    def offers_made(self) -> int:
        return sum(row.made for row in self.offers)

    @property
    def offers_accepted(self) -> int:
        return sum(row.accepted for row in self.offers)


def retention(*, session: Session, period: Period, leaving: Sequence[Leaver]) -> Retention:
    """Who asked to leave and where they stand, by reason and segment; the offers made and answered."""
    by_reason = [tally(reason, (x for x in leaving if x.reason is reason)) for reason in LeaveReason] + [
        tally(NO_REASON, (x for x in leaving if x.reason is None))
    ]
    return Retention(
        overall=tally("all", leaving),
        by_reason=[row for row in by_reason if row.asked],
        by_segment=[
            row for row in (tally(s, (x for x in leaving if x.segment is s)) for s in Segment) if row.asked
        ],
        offers=offer_rows(session=session, period=period),
        nothing_fitted=int(
            session.scalar(
                select(func.count(RetentionAttempt.id)).where(
                    RetentionAttempt.offer_id.is_(None), _within(RetentionAttempt.created_at, period)
                )
            )
            or 0
        ),
    )


def offer_rows(*, session: Session, period: Period) -> list[OfferRow]:
    """Offers made in the period, one row per offer (by code), the most made first."""
    rows = session.execute(
        select(Offer.code, Offer.title, Offer.segment, Offer.reason, RetentionAttempt.outcome)
        .join(Offer, Offer.id == RetentionAttempt.offer_id)
        .where(_within(RetentionAttempt.created_at, period))
    ).all()
    outcomes: dict[str, Counter[RetentionOutcome]] = defaultdict(Counter)
    about: dict[str, tuple[str, Segment | None, LeaveReason]] = {}
    for code, title, segment, reason, outcome in rows:
        outcomes[code][outcome] += 1
        about[code] = (title, segment, reason)
    titles = _distinct_titles(about)
    found = [
        OfferRow(
            code=code,
            title=titles[code],
            made=sum(counts.values()),
            accepted=counts[RetentionOutcome.ACCEPTED],
            declined=counts[RetentionOutcome.DECLINED],
            unanswered=counts[RetentionOutcome.PENDING],
        )
        for code, counts in outcomes.items()
    ]
    return sorted(found, key=lambda row: (-row.made, row.title, row.code))


def _distinct_titles(about: dict[str, tuple[str, Segment | None, LeaveReason]]) -> dict[str, str]:
    """Offers that share a title are told apart by the segment they are for, else by the leave reason
    they answer, else by their code."""
    named = {}
    for code, (title, segment, reason) in about.items():
        twins = [(s, r) for t, s, r in about.values() if t == title]
        if len(twins) == 1:
            named[code] = title
        elif segment is not None and [s for s, _ in twins].count(segment) == 1:
            named[code] = f"{title} (for {label(segment)} customers)"
        elif [r for _, r in twins].count(reason) == 1:
            named[code] = f"{title} (when leaving over {label(reason)})"
        else:
            named[code] = f"{title} ({code})"
    return named


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
    shares: dict[int, int | None]  # score 1–5 → whole percent of the answers
    low: int  # scores of LOW_SCORE or less
    recovery_cases: int  # of the low scores, those that opened a recovery case
    by_source: list[SourceRow]  # always the three sources, in order


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
    shares = whole_percentages([distribution.get(score, 0) for score in SCORES])
    return Satisfaction(
        answers=len(scores),
        average=_mean(scores),
        distribution={score: distribution.get(score, 0) for score in SCORES},
        shares=dict(zip(SCORES, shares, strict=True)),
        low=len(low),
        recovery_cases=len(low & _surveys_with_recovery(session=session, period=period)),
        by_source=[SourceRow(name, len(sources[name]), _mean(sources[name])) for name in SOURCES],
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


# ----- complaint cases -----


@dataclass(frozen=True)
class CountRow:
    group: object  # a ComplaintCategory or a Severity
    filed: int
    resolved: int


@dataclass(frozen=True)
class Timing:
    """How long something took, in seconds, over `count` cases."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        return cls(len(seconds), middle(seconds), p90(seconds))


@dataclass(frozen=True)
class TeamRow:
    """The cases of one team and severity: filed and how fast first answered, resolved and how fast."""

    team: str
    severity: Severity | None  # None: the team's (or everybody's) total
    filed: int
    first_response: Timing
    awaiting_response: int
    resolved: int
    to_resolve: Timing


@dataclass(frozen=True)
class CauseRow:
    category: ComplaintCategory | None  # None with product None: the other, rarer combinations
    product: str | None
    cases: int


@dataclass(frozen=True)
class Cases:
    filed: int
    resolved: int
    by_category: list[CountRow]
    by_severity: list[CountRow]
    by_team: list[TeamRow]  # per team and severity, each team followed by its total
    overall: TeamRow
    promises_kept: int
    broken_resolved: int  # resolved after the promise (or with the promise moved)
    broken_open: int  # still open, the promise passed in the period
    told_in_time: int  # of the broken, the customer had an honest update before the promise passed
    revisits_fine: int
    revisits_reopened: int
    causes: list[CauseRow]

    @property
    def promises_due(self) -> int:
        return self.promises_kept + self.promises_broken

    @property
    def promises_broken(self) -> int:
        return self.broken_resolved + self.broken_open

    @property
    def promise_shares(self) -> tuple[int | None, int | None]:
        kept, broken = whole_percentages([self.promises_kept, self.promises_broken])
        return kept, broken

    @property
    def revisits(self) -> int:
        return self.revisits_fine + self.revisits_reopened

    @property
    def reopen_rate(self) -> float | None:
        return rate(self.revisits_reopened, self.revisits)


@dataclass(frozen=True)
class _Case:
    id: int
    team: str
    severity: Severity
    category: ComplaintCategory
    filed: bool  # in the period
    resolved: bool  # in the period
    responded_after: float | None  # seconds from filing to the first response
    resolved_after: float | None
    order_id: int | None


def cases(*, session: Session, period: Period) -> Cases:
    """Complaint cases: filed and resolved, how fast by team and severity, the promises kept, the
    revisits' answers and the recurring causes."""
    found = _cases_in(session=session, period=period)
    filed = [c for c in found.values() if c.filed]
    resolved = [c for c in found.values() if c.resolved]
    kept, broken_resolved, broken_open, told = _promises(session=session, period=period)
    fine, reopened = _revisits(session=session, period=period)
    return Cases(
        filed=len(filed),
        resolved=len(resolved),
        by_category=_count_rows(filed, resolved, ComplaintCategory, lambda c: c.category),
        by_severity=_count_rows(filed, resolved, Severity, lambda c: c.severity),
        by_team=_team_rows(list(found.values())),
        overall=_team_row("all", None, list(found.values())),
        promises_kept=kept,
        broken_resolved=broken_resolved,
        broken_open=broken_open,
        told_in_time=told,
        revisits_fine=fine,
        revisits_reopened=reopened,
        causes=_causes(session=session, filed=filed),
    )


def _cases_in(*, session: Session, period: Period) -> dict[int, _Case]:
    """The cases filed or resolved in the period."""
    rows = session.execute(
        select(
            Complaint.id,
            Complaint.team,
            Complaint.severity,
            Complaint.category,
            Complaint.created_at,
            Complaint.first_response_at,
            Complaint.resolved_at,
            Complaint.order_id,
        ).where(_within(Complaint.created_at, period) | _within(Complaint.resolved_at, period))
    ).all()
    found = {}
    for r in rows:
        # Cases filed before first responses were recorded: their resolution was the first response.
        responded = r.first_response_at or r.resolved_at
        found[r.id] = _Case(
            id=r.id,
            team=r.team,
            severity=r.severity,
            category=r.category,
            filed=r.created_at in period,
            resolved=r.resolved_at in period,
            responded_after=(responded - r.created_at).total_seconds() if responded else None,
            resolved_after=(r.resolved_at - r.created_at).total_seconds() if r.resolved_at else None,
            order_id=r.order_id,
        )
    return found


def _count_rows(
    filed: list[_Case], resolved: list[_Case], vocabulary: Iterable[enum.Enum], key: Callable[[_Case], object]
) -> list[CountRow]:
    f, r = Counter(map(key, filed)), Counter(map(key, resolved))
    return [CountRow(v, f[v], r[v]) for v in vocabulary if f[v] or r[v]]


def _team_rows(found: list[_Case]) -> list[TeamRow]:
    teams = [t.value for t in Team] + sorted({c.team for c in found} - {t.value for t in Team})
    rows: list[TeamRow] = []
    for team in teams:
        mine = [c for c in found if c.team == team]
        if not mine:
            continue
        rows += [
            _team_row(team, severity, [c for c in mine if c.severity is severity])
            for severity in Severity
            if any(c.severity is severity for c in mine)
        ]
        rows.append(_team_row(team, None, mine))
    return rows


def _team_row(team: str, severity: Severity | None, found: list[_Case]) -> TeamRow:
    filed = [c for c in found if c.filed]
    resolved = [c for c in found if c.resolved]
    return TeamRow(
        team=team,
        severity=severity,
        filed=len(filed),
        first_response=Timing.of([c.responded_after for c in filed if c.responded_after is not None]),
        awaiting_response=sum(1 for c in filed if c.responded_after is None),
        resolved=len(resolved),
        to_resolve=Timing.of([c.resolved_after for c in resolved if c.resolved_after is not None]),
    )


def _promises(*, session: Session, period: Period) -> tuple[int, int, int, int]:
    """(kept, broken and resolved, broken and still open, broken but told in time) for the promises
    that came due in the period: the cases resolved in it, and the open ones whose time passed in it."""
    resolved = session.execute(
        select(Complaint.id, Complaint.resolved_at, Complaint.sla_due_at).where(
            _within(Complaint.resolved_at, period)
        )
    ).all()
    still_open = session.execute(
        select(Complaint.id, Complaint.sla_due_at).where(
            Complaint.status.in_(OPEN_STATUSES), Complaint.sla_due_at >= period.start
        )
    ).all()
    ids = [r.id for r in resolved] + [c.id for c in still_open]
    updates = honest_updates(session=session, complaint_ids=ids)
    promised = {r.id: first_promise(r.sla_due_at, updates.get(r.id)) for r in resolved}
    overdue = {c.id for c in still_open if first_promise(c.sla_due_at, updates.get(c.id)) in period}
    promised |= {c.id: first_promise(c.sla_due_at, updates.get(c.id)) for c in still_open if c.id in overdue}
    kept = {r.id for r in resolved if r.resolved_at <= promised[r.id]}
    told = sum(1 for cid, due in promised.items() if cid not in kept and _told_before(updates.get(cid), due))
    return len(kept), len(resolved) - len(kept), len(overdue), told


@dataclass(frozen=True)
class HonestUpdate:
    """The SLA clock's honest update of a case: the promise it replaced, and when the customer was
    sent the message (None while it waits, for instance for the end of their quiet hours)."""

    replaced: datetime
    sent_at: datetime | None


def honest_updates(*, session: Session, complaint_ids: list[int]) -> dict[int, HonestUpdate]:
    """Each case's first honest update since its current promise was made (filing or reopening):
    the history's `promise` line (its from-value is the promise it moved, in Unix seconds) and the
    message the clock queued with it (a `late` case update, bot.crm.cases.late_key)."""
    if not complaint_ids:
        return {}
    events = session.execute(
        select(CaseEvent.complaint_id, CaseEvent.kind, CaseEvent.created_at, CaseEvent.from_value)
        .where(
            CaseEvent.complaint_id.in_(complaint_ids),
            CaseEvent.kind.in_([CaseEventKind.PROMISE, CaseEventKind.REOPENED]),
        )
        .order_by(CaseEvent.created_at, CaseEvent.id)
    ).all()
    moved: dict[int, tuple[datetime, datetime]] = {}
    for complaint_id, kind, at, was in events:
        if kind is CaseEventKind.REOPENED:
            moved.pop(complaint_id, None)  # a new promise: updates of the earlier one do not count
        elif complaint_id not in moved and (replaced := _moment(was)) is not None:
            moved[complaint_id] = (at, replaced)
    sent = _late_updates_sent(session=session, complaint_ids=list(moved))
    return {
        cid: HonestUpdate(replaced, min((t for t in sent.get(cid, []) if t >= at), default=None))
        for cid, (at, replaced) in moved.items()
    }


def _late_updates_sent(*, session: Session, complaint_ids: list[int]) -> dict[int, list[datetime]]:
    """When each case's honest updates went out to the customer."""
    if not complaint_ids:
        return {}
    rows = session.execute(
        select(Delivery.complaint_id, Delivery.idempotency_key, Delivery.sent_at).where(
            Delivery.complaint_id.in_(complaint_ids),
            Delivery.kind == OutreachKind.CASE_UPDATE,
            Delivery.sent_at.is_not(None),
        )
    ).all()
    sent: dict[int, list[datetime]] = defaultdict(list)
    for complaint_id, key, at in rows:
        if key.startswith(_late_prefix(complaint_id)):
            sent[complaint_id].append(at)
    return sent


def _late_prefix(complaint_id: int) -> str:
    """`late_key(case, round)` without its round: every honest update of the case."""
    return late_key(complaint_id, 0).rpartition(":")[0] + ":"


def _told_before(update: HonestUpdate | None, due: datetime) -> bool:
    return update is not None and update.sent_at is not None and update.sent_at < due


def first_promise(due: datetime, update: HonestUpdate | None) -> datetime:
    """The time promised before any honest update moved it."""
    return update.replaced if update is not None else due


def _moment(text: str | None) -> datetime | None:
    """A moment the case history keeps as Unix seconds."""
    try:
        return datetime.fromtimestamp(int(text), tz=timezone.utc) if text else None
    except ValueError:
        return None


def _revisits(*, session: Session, period: Period) -> tuple[int, int]:
    """(fine, not fine) answers to "is everything fine now?" given in the period, from the cases' history."""
    fine = session.scalar(
        select(func.count(CaseEvent.id)).where(
            CaseEvent.kind == CaseEventKind.STATE,
            CaseEvent.to_value == ComplaintStatus.CLOSED.value,
            CaseEvent.actor == "customer",
            _within(CaseEvent.created_at, period),
        )
    )
    reopened = session.scalar(
        select(func.count(CaseEvent.id)).where(
            CaseEvent.kind == CaseEventKind.REOPENED, _within(CaseEvent.created_at, period)
        )
    )
    return int(fine or 0), int(reopened or 0)


def _causes(*, session: Session, filed: list[_Case]) -> list[CauseRow]:
    """Cases filed by category × product: the combinations seen more than once (at most TOP_CAUSES),
    then one row with all the others, so the rows add up to the cases filed."""
    products = _main_products(session=session, order_ids={c.order_id for c in filed if c.order_id})
    counts = Counter((c.category, products.get(c.order_id or 0, NO_PRODUCT)) for c in filed)
    order = list(ComplaintCategory)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0][0]), item[0][1]))
    recurring = [CauseRow(category, product, n) for (category, product), n in ranked if n > 1][:TOP_CAUSES]
    rest = len(filed) - sum(row.cases for row in recurring)
    return recurring + ([CauseRow(None, None, rest)] if rest else [])


def _main_products(*, session: Session, order_ids: set[int]) -> dict[int, str]:
    """Each order's product of the largest line (by value, then quantity, then the lowest line id)."""
    if not order_ids:
        return {}
    lines = session.execute(
        select(OrderLine.order_id, OrderLine.id, OrderLine.quantity, OrderLine.unit_price, Product.name)
        .join(Product, Product.id == OrderLine.product_id)
        .where(OrderLine.order_id.in_(order_ids))
    ).all()
    best: dict[int, tuple[tuple[Decimal, int, int], str]] = {}
    for line in lines:
        key = (line.quantity * line.unit_price, line.quantity, -line.id)
        if line.order_id not in best or key > best[line.order_id][0]:
            best[line.order_id] = (key, line.name)
    return {order_id: str(name) for order_id, (_, name) in best.items()}


# ----- handoffs -----


@dataclass(frozen=True)
class Handoffs:
    requested: int
    live: int
    callbacks: int  # filed for later rather than taken over live
    claimed: int
    wait: Timing  # seconds from the request until a person took it


def handoffs(*, session: Session, period: Period) -> Handoffs:
    """Handoffs requested in the period and how long customers waited for a person."""
    rows = session.execute(
        select(Handoff.mode, Handoff.requested_at, Handoff.claimed_at).where(
            _within(Handoff.requested_at, period)
        )
    ).all()
    waits = [(r.claimed_at - r.requested_at).total_seconds() for r in rows if r.claimed_at is not None]
    callbacks = sum(1 for r in rows if r.mode == HANDOFF_CALLBACK)
    return Handoffs(
        requested=len(rows),
        live=len(rows) - callbacks,
        callbacks=callbacks,
        claimed=len(waits),
        wait=Timing.of(waits),
    )


# ----- drifting customers: caught early, and did they come back? -----


@dataclass(frozen=True)
class DriftRow:
    group: str  # a segment, or what was done
    began: int  # drift episodes that began in the period
    came_back: int  # the customer ordered or wrote within 30 days
    lapsed: int
    open: int  # still within their 30 days

    @property
    def rate(self) -> float | None:
        """Came back ÷ (came back + lapsed): of the episodes that are over, the share who came back."""
        return rate(self.came_back, self.came_back + self.lapsed)


@dataclass(frozen=True)
class Drifting:
    overall: DriftRow
    by_segment: list[DriftRow]
    by_action: list[DriftRow]
    tasks_done: int  # of the tasks for a person, those a person marked done


def drifting(*, session: Session, period: Period) -> Drifting:
    """Drift episodes that began in the period, by segment and by what was done, and how they ended."""
    rows = session.execute(
        select(
            DriftEpisode.segment,
            DriftEpisode.action,
            DriftEpisode.outcome,
            DriftEpisode.task_done_at,
            Delivery.status,
            Delivery.skip_reason,
        )
        .outerjoin(Delivery, Delivery.id == DriftEpisode.delivery_id)
        .where(_within(DriftEpisode.started_at, period))
    ).all()
    by_segment: dict[str, list[str | None]] = defaultdict(list)
    by_action: dict[str, list[str | None]] = defaultdict(list)
    for segment, action, outcome, _done, status, skip in rows:
        by_segment[_code(segment)].append(outcome)
        by_action[_drift_action(action, status, skip)].append(outcome)
    return Drifting(
        overall=_drift_row("all", [r.outcome for r in rows]),
        by_segment=[_drift_row(s.value, by_segment[s.value]) for s in Segment if s.value in by_segment],
        by_action=[_drift_row(group, found) for group, found in sorted(by_action.items())],
        tasks_done=sum(1 for r in rows if r.action == "task" and r.task_done_at is not None),
    )


def _drift_action(action: str, status: DeliveryStatus | None, skip: str | None) -> str:
    if action == "task":
        return "task for a person"
    if action != "checkin":
        return "not chased (below zero)"
    if status is DeliveryStatus.SENT:
        return "check-in sent"
    if status is DeliveryStatus.SKIPPED:
        return f"check-in not sent: {label(skip) if skip else 'skipped'}"
    return "check-in not sent yet"


def _drift_row(group: str, outcomes: list[str | None]) -> DriftRow:
    counted = Counter(outcomes)
    return DriftRow(group, len(outcomes), counted["came_back"], counted["lapsed"], counted[None])


# ----- the whole report -----


@dataclass(frozen=True)
class Report:
    period: Period
    loyalty: Loyalty
    retention: Retention
    satisfaction: Satisfaction
    cases: Cases
    handoffs: Handoffs
    drifting: Drifting
    at_risk: AtRisk
    glossary: dict[str, str] = field(default_factory=lambda: dict(GLOSSARY))

    @property
    def empty(self) -> bool:
        """Nothing in the CRM to report on: no customers and nothing happened in the period."""
        return self.loyalty.customers == 0 and not self.activity

    @property
    def activity(self) -> int:
        return (
            self.retention.overall.asked
            + self.satisfaction.answers
            + self.cases.filed
            + self.cases.resolved
            + self.handoffs.requested
            + self.drifting.overall.began
        )


AT_RISK_SHOWN = 25


@dataclass(frozen=True)
class RiskyCustomer:
    customer_id: int
    name: str
    segment: Segment
    risk: float
    reasons: tuple[str, ...]  # the stored reasons' sentences, strongest first


@dataclass(frozen=True)
class AtRisk:
    """The customers most likely to leave today, highest risk first (not a figure of the period)."""

    segment: Segment | None  # the filter; None: every segment
    customers: list[RiskyCustomer]
    scored: int  # customers of that filter with a risk above 0


def at_risk(*, session: Session, segment: Segment | None = None, limit: int = AT_RISK_SHOWN) -> AtRisk:
    """The customers most likely to leave, by their stored churn risk (bot/crm/churn.py)."""
    where = [Customer.erased_at.is_(None), Customer.churn_risk > 0]
    if segment is not None:
        where.append(Customer.segment == segment)
    rows = session.execute(
        select(
            Customer.id,
            Customer.first_name,
            Customer.last_name,
            Customer.segment,
            Customer.churn_risk,
            Customer.churn_reasons,
        )
        .where(*where)
        .order_by(Customer.churn_risk.desc(), Customer.id)
        .limit(limit)
    ).all()
    return AtRisk(
        segment=segment,
        customers=[
            RiskyCustomer(
                customer_id=row.id,
                name=" ".join(p for p in (row.first_name, row.last_name) if p) or f"customer #{row.id}",
                segment=row.segment,
                risk=round(float(row.churn_risk), 2),
                reasons=tuple(str(r.get("text", "")) for r in (row.churn_reasons or []) if r.get("text")),
            )
            for row in rows
        ],
        scored=session.scalar(select(func.count()).select_from(Customer).where(*where)) or 0,
    )


def report(*, session: Session, period: Period, risk_segment: Segment | None = None) -> Report:
    leaving = leavers(session=session, period=period)
    return Report(
        period=period,
        loyalty=loyalty(session=session, period=period, leaving=leaving),
        retention=retention(session=session, period=period, leaving=leaving),
        satisfaction=satisfaction(session=session, period=period),
        cases=cases(session=session, period=period),
        handoffs=handoffs(session=session, period=period),
        drifting=drifting(session=session, period=period),
        at_risk=at_risk(session=session, segment=risk_segment),
    )


def csv_rows(report: Report) -> Iterator[tuple[str, str, str, str]]:
    """The report as (section, group, figure, value) rows; rates as fractions with 4 decimals, times
    in hours."""
    r = report
    yield "period", "", "start", r.period.start.isoformat()
    yield "period", "", "end", r.period.end.isoformat()
    yield "loyalty", "all", "customers", str(r.loyalty.customers)
    yield "loyalty", "all", "new customers", str(r.loyalty.new_customers)
    for s in r.loyalty.segments:
        yield "loyalty", s.segment.value, "customers", str(s.customers)
        yield "loyalty", s.segment.value, "share %", _number(s.share)
        yield "loyalty", s.segment.value, "marketing consent", str(s.marketing_consent)
        yield "loyalty", s.segment.value, "asked to leave", str(s.leaving.asked)
    for section, rows in (
        ("retention", [r.retention.overall]),
        ("retention by reason", r.retention.by_reason),
        ("retention by segment", r.retention.by_segment),
    ):
        for row in rows:
            group = _code(row.group)
            yield section, group, "asked to leave", str(row.asked)
            yield section, group, "stayed", str(row.stayed)
            yield section, group, "left", str(row.left)
            yield section, group, "not decided yet", str(row.undecided)
            yield section, group, "save rate", _number(row.rate)
    for offer in r.retention.offers:
        yield "offers", offer.title, "made", str(offer.made)
        yield "offers", offer.title, "accepted", str(offer.accepted)
        yield "offers", offer.title, "declined", str(offer.declined)
        yield "offers", offer.title, "no answer yet", str(offer.unanswered)
    yield "offers", "all", "nothing fitted", str(r.retention.nothing_fitted)
    sat = r.satisfaction
    yield "satisfaction", "all", "ratings", str(sat.answers)
    yield "satisfaction", "all", "average", _number(sat.average)
    for score, n in sat.distribution.items():
        yield "satisfaction", "all", f"score {score}", str(n)
    yield "satisfaction", "all", "low scores", str(sat.low)
    yield "satisfaction", "all", "recovery cases opened", str(sat.recovery_cases)
    for source in sat.by_source:
        yield "satisfaction by source", source.source, "ratings", str(source.answers)
        yield "satisfaction by source", source.source, "average", _number(source.average)
    yield from _case_rows(r.cases)
    h = r.handoffs
    yield "handoffs", "all", "requested", str(h.requested)
    yield "handoffs", "all", "live", str(h.live)
    yield "handoffs", "all", "callbacks", str(h.callbacks)
    yield "handoffs", "all", "taken by a person", str(h.claimed)
    yield "handoffs", "all", "median minutes to take", _number(_minutes(h.wait.median))
    yield "handoffs", "all", "p90 minutes to take", _number(_minutes(h.wait.p90))
    yield from _drift_rows(r.drifting)
    for c in r.at_risk.customers:  # the customer's id, not their name: a CSV travels
        yield "churn risk today", c.segment.value, f"customer #{c.customer_id}", _number(c.risk)


def _drift_rows(d: Drifting) -> Iterator[tuple[str, str, str, str]]:
    for section, rows in (
        ("drifting", [d.overall]),
        ("drifting by segment", d.by_segment),
        ("drifting by what was done", d.by_action),
    ):
        for row in rows:
            yield section, row.group, "began drifting", str(row.began)
            yield section, row.group, "came back", str(row.came_back)
            yield section, row.group, "lapsed", str(row.lapsed)
            yield section, row.group, "still open", str(row.open)
            yield section, row.group, "came-back rate", _number(row.rate)
    yield "drifting", "all", "tasks done by a person", str(d.tasks_done)


def _case_rows(c: Cases) -> Iterator[tuple[str, str, str, str]]:
    yield "cases", "all", "filed", str(c.filed)
    yield "cases", "all", "resolved", str(c.resolved)
    for section, counts in (("cases by category", c.by_category), ("cases by severity", c.by_severity)):
        for row in counts:
            yield section, _code(row.group), "filed", str(row.filed)
            yield section, _code(row.group), "resolved", str(row.resolved)
    for t in [*c.by_team, c.overall]:
        group = f"{t.team} / {t.severity.value if t.severity else 'all'}"
        yield "cases by team", group, "filed", str(t.filed)
        yield (
            "cases by team",
            group,
            "median hours to first response",
            _number(_hours(t.first_response.median)),
        )
        yield "cases by team", group, "p90 hours to first response", _number(_hours(t.first_response.p90))
        yield "cases by team", group, "awaiting a first response", str(t.awaiting_response)
        yield "cases by team", group, "resolved", str(t.resolved)
        yield "cases by team", group, "median hours to resolve", _number(_hours(t.to_resolve.median))
        yield "cases by team", group, "p90 hours to resolve", _number(_hours(t.to_resolve.p90))
    yield "case promises", "all", "kept", str(c.promises_kept)
    yield "case promises", "all", "broken, resolved late", str(c.broken_resolved)
    yield "case promises", "all", "broken, still open", str(c.broken_open)
    yield "case promises", "all", "broken, told in time", str(c.told_in_time)
    yield "case revisits", "all", "fine", str(c.revisits_fine)
    yield "case revisits", "all", "reopened", str(c.revisits_reopened)
    yield "case revisits", "all", "reopen rate", _number(c.reopen_rate)
    for cause in c.causes:
        group = f"{_code(cause.category)} / {cause.product}" if cause.category else "other combinations"
        yield "recurring causes", group, "cases", str(cause.cases)


def _code(value: object) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _within(column: SQLColumnExpression[datetime | None], period: Period) -> ColumnElement[bool]:
    return (column >= period.start) & (column < period.end)
