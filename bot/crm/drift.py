"""Disengagement caught early: who is drifting away, one episode per spell, and whether they came back.

A customer is **drifting** when they are overdue against their own buying rhythm by a clear margin
(without a rhythm yet: silent past their segment's threshold), or when they left our latest two
messages unanswered. The rhythm and the unanswered messages are read with `bot.crm.churn`'s
signals, so the churn score and the drift agree. Only the customer's own orders and messages
count as their activity: our outbound messages never do.

What is done depends on the segment (docs/drift.md): MVC and MCC customers get a person first, a
callback task on the Cases page; standard customers the silence check-in worded to the reason,
through the scheduler's policy gate; below-zero customers are recorded, not chased. Every episode
ends when the customer comes back (an order or a message within `RETURN_DAYS`) or lapses.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from bot.crm.churn import COUNTED_ORDER_STATUSES, RULES, Signals, collect_signals, usual_interval
from bot.crm.models import (
    CaseEvent,
    CaseEventKind,
    Complaint,
    Customer,
    Delivery,
    DriftEpisode,
    Order,
    Role,
    Segment,
    SubscriptionStatus,
    Survey,
    Team,
)

# Without a buying rhythm, a customer is drifting after this many days of silence, by segment:
# valuable customers are missed sooner.
SILENCE_DAYS = {Segment.MVC: 30, Segment.MCC: 21, Segment.STANDARD: 60, Segment.BZ: 60}
RETURN_DAYS = 30  # an order or a message within this long after the episode began: they came back
TASK_SEGMENTS = frozenset({Segment.MVC, Segment.MCC})  # a person first, not a bot message
NOT_CHASED = frozenset({Segment.BZ})  # they cost more than they bring: recorded, not chased
# The check-in's wording (the drift_reason slot in domain.yml), strongest first.
REASON_WORDS = ("bad_case", "idle_member", "lapsed_buyer", "quiet")
MEMBER_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)
CHUNK = 500  # ids per IN (...) list
T = TypeVar("T")
BAD_RATING = 2  # a case rated this or lower ended badly
CASE_MEMORY_DAYS = 180  # an older case no longer explains a silence


@dataclass(frozen=True)
class DriftRules:
    """When overdue or silent counts as drifting."""

    overdue_factor: float = 2.0  # × the usual interval between orders: a clear margin
    overdue_min_extra_days: int = 14  # and at least this many days past the usual interval
    ignored_in_a_row: int = 2
    gone_factor: float = 2.0  # past this × the drift point the customer is gone, not drifting
    cooldown_days: int = 60  # no new episode this soon after the last one began


DRIFT_RULES = DriftRules()


@dataclass(frozen=True)
class Drift:
    """One customer found drifting, as of one moment."""

    customer_id: int
    segment: Segment
    last_active_at: datetime
    reason: str  # one of REASON_WORDS
    reasons: list[dict[str, str]]  # [{"factor", "text"}], for the task and the record

    @property
    def key(self) -> str:
        return episode_key(self.customer_id, self.last_active_at)


def episode_key(customer_id: int, last_active_at: datetime) -> str:
    """The episode's idempotency key: the customer and the day of their own last activity."""
    return f"drift:customer:{customer_id}:since:{last_active_at:%Y-%m-%d}"


# ----- who is drifting -----


def drifting(
    *,
    session: Session,
    now: datetime,
    customer_ids: Collection[int] | None = None,
    rules: DriftRules = DRIFT_RULES,
) -> list[Drift]:
    """Everybody drifting as of `now` (or among the customers given), a few queries in all."""
    signals = collect_signals(session=session, now=now, customer_ids=customer_ids)
    facts = _customer_facts(session, [s.customer_id for s in signals])
    found: list[Drift] = []
    for s in signals:
        segment, last_contact = facts.get(s.customer_id, (None, None))
        if segment is None:
            continue
        drift = _judge(s, segment, last_contact, now, rules)
        if drift is not None:
            found.append(drift)
    bad = _bad_cases(session, [d.customer_id for d in found], now)
    return [_worded(d, bad.get(d.customer_id)) for d in found]


def _customer_facts(session: Session, customer_ids: list[int]) -> dict[int, tuple[Segment, datetime | None]]:
    facts: dict[int, tuple[Segment, datetime | None]] = {}
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        for cid, segment, last_contact in session.execute(
            select(Customer.id, Customer.segment, Customer.last_contact_at).where(Customer.id.in_(chunk))
        ):
            facts[cid] = (segment, last_contact)
    return facts


def last_active(signals: Signals, last_contact: datetime | None) -> datetime | None:
    """The customer's own latest order or message; our messages to them are not theirs."""
    moments = [m for m in (last_contact, signals.last_inbound_at) if m is not None]
    if signals.order_times:
        moments.append(signals.order_times[-1])
    return max(moments) if moments else None


def _judge(
    s: Signals, segment: Segment, last_contact: datetime | None, now: datetime, rules: DriftRules
) -> Drift | None:
    active = last_active(s, last_contact)
    if active is None:
        return None  # never bought or wrote: nothing to drift from
    quiet_days = (now - active).total_seconds() / 86400
    reasons: list[dict[str, str]] = []
    if len(s.order_times) >= RULES.rhythm_min_orders:
        usual = max(1.0, usual_interval(s.order_times))
        point = max(usual * rules.overdue_factor, usual + rules.overdue_min_extra_days)
        since_order = (now - s.order_times[-1]).total_seconds() / 86400
        if point <= since_order < point * rules.gone_factor:
            text = f"no order for {int(since_order)} days, usually every {round(usual)}"
            reasons.append({"factor": "overdue", "text": text})
    else:
        point = SILENCE_DAYS[segment]
        if point <= quiet_days < point * rules.gone_factor:
            text = (
                f"nothing from them for {int(quiet_days)} days (drifting after {point} for {segment.value})"
            )
            reasons.append({"factor": "silent", "text": text})
    if s.ignored_outreach >= rules.ignored_in_a_row and quiet_days < point * rules.gone_factor:
        reasons.append(
            {"factor": "ignored_outreach", "text": f"our last {s.ignored_outreach} messages unanswered"}
        )
    if not reasons:
        return None
    if s.membership in MEMBER_STATUSES and s.order_times:
        reasons.append({"factor": "idle_member", "text": f"membership {s.membership.value}, not used"})
    # "It's been a while since your last order" only when the orders are what stopped; a buyer who
    # just leaves our messages unanswered hears the plain check-in.
    lapsed = s.order_times and reasons[0]["factor"] in ("overdue", "silent")
    return Drift(s.customer_id, segment, active, "lapsed_buyer" if lapsed else "quiet", reasons)


def _bad_cases(session: Session, customer_ids: list[int], now: datetime) -> dict[int, str]:
    """For each customer whose latest recent case ended badly, the words for why."""
    since = now - timedelta(days=CASE_MEMORY_DAYS)
    latest: dict[int, int] = {}
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        rows = session.execute(
            select(Complaint.customer_id, func.max(Complaint.id))
            .where(
                Complaint.customer_id.in_(chunk), Complaint.created_at >= since, Complaint.created_at <= now
            )
            .group_by(Complaint.customer_id)
        )
        latest.update({cid: case_id for cid, case_id in rows})
    if not latest:
        return {}
    cases = list(latest.values())
    reopened = set(
        session.scalars(
            select(CaseEvent.complaint_id).where(
                CaseEvent.complaint_id.in_(cases), CaseEvent.kind == CaseEventKind.REOPENED
            )
        )
    )
    rated_low = dict(
        session.execute(
            select(Survey.complaint_id, func.min(Survey.score))
            .where(Survey.complaint_id.in_(cases), Survey.score <= BAD_RATING)
            .group_by(Survey.complaint_id)
        )
        .tuples()
        .all()
    )
    words: dict[int, str] = {}
    for cid, case_id in latest.items():
        if case_id in rated_low:
            words[cid] = f"last case #{case_id} rated {rated_low[case_id]}/5"
        elif case_id in reopened:
            words[cid] = f"last case #{case_id} had to be reopened"
    return words


def _worded(drift: Drift, bad_case: str | None) -> Drift:
    """The drift with the reason its check-in names: a case that ended badly first, then an idle
    membership, then the lapsed buyer."""
    reasons = list(drift.reasons)
    if bad_case:
        reasons.append({"factor": "bad_case", "text": bad_case})
    factors = {r["factor"] for r in reasons}
    reason = next((word for word in REASON_WORDS[:2] if word in factors), drift.reason)
    return Drift(drift.customer_id, drift.segment, drift.last_active_at, reason, reasons)


# ----- the episodes -----


def open_episodes(
    *, session: Session, now: datetime, found: list[Drift], rules: DriftRules = DRIFT_RULES
) -> list[DriftEpisode]:
    """Record a new episode for each drifting customer not already in one; return the new ones.

    The action is decided here (task, check-in or not chased); the caller carries it out."""
    if not found:
        return []
    ids = [d.customer_id for d in found]
    keys = {d.key for d in found}
    known = set(session.scalars(select(DriftEpisode.key).where(DriftEpisode.key.in_(keys))))
    recent = set(
        session.scalars(
            select(DriftEpisode.customer_id).where(
                DriftEpisode.customer_id.in_(ids),
                or_(
                    DriftEpisode.ended_at.is_(None),
                    DriftEpisode.started_at > now - timedelta(days=rules.cooldown_days),
                ),
            )
        )
    )
    rows = []
    for drift in found:
        if drift.key in known or drift.customer_id in recent:
            continue
        known.add(drift.key)
        rows.append(
            {
                "key": drift.key,
                "customer_id": drift.customer_id,
                "segment": drift.segment,
                "reason": drift.reason,
                "reasons": drift.reasons,
                "last_active_at": drift.last_active_at,
                "started_at": now,
                "action": action_for(drift.segment),
            }
        )
    # One INSERT per chunk, then the episodes read back by key: the ORM's flush wrote them one
    # statement each on SQLite (it must return each new id, and SQLite gives no order for them).
    for chunk in _chunks(rows):
        session.execute(insert(DriftEpisode), chunk)
    new_keys = [str(row["key"]) for row in rows]
    by_key: dict[str, DriftEpisode] = {}
    for chunk_keys in _chunks(new_keys):
        by_key.update(
            (episode.key, episode)
            for episode in session.scalars(select(DriftEpisode).where(DriftEpisode.key.in_(chunk_keys)))
        )
    return [by_key[key] for key in new_keys]


def action_for(segment: Segment) -> str:
    """What a drifting customer of this segment gets first."""
    if segment in TASK_SEGMENTS:
        return "task"
    if segment in NOT_CHASED:
        return "not_chased"
    return "checkin"


def close_episodes(*, session: Session, now: datetime) -> dict[str, int]:
    """End the open episodes whose customer came back, or whose time to come back is over."""
    ended = {"came_back": 0, "lapsed": 0}
    episodes = session.scalars(select(DriftEpisode).where(DriftEpisode.ended_at.is_(None))).all()
    deadlines = [episode.started_at + timedelta(days=RETURN_DAYS) for episode in episodes]
    backs = _came_back_all(session, [(e, min(now, d)) for e, d in zip(episodes, deadlines, strict=True)])
    for episode, deadline, back in zip(episodes, deadlines, backs, strict=True):
        if back is not None:
            episode.outcome, episode.came_back_by, episode.ended_at = "came_back", back[0], back[1]
        elif now >= deadline:
            episode.outcome, episode.ended_at = "lapsed", deadline
        else:
            continue
        ended[episode.outcome] += 1
    session.flush()
    return ended


def came_back(*, session: Session, episode: DriftEpisode, until: datetime) -> tuple[str, datetime] | None:
    """How and when the customer came back after the episode began ("order" or "message"), if they did."""
    return _came_back_all(session, [(episode, until)])[0]


def _came_back_all(
    session: Session, windows: Sequence[tuple[DriftEpisode, datetime]]
) -> list[tuple[str, datetime] | None]:
    """`came_back` for each (episode, until), two queries per 500 customers."""
    if not windows:
        return []
    orders: dict[int, list[datetime]] = {}
    wrote: dict[int, datetime | None] = {}
    customer_ids = sorted({episode.customer_id for episode, _ in windows})
    earliest = min(episode.started_at for episode, _ in windows)
    latest = max(until for _, until in windows)
    for chunk in _chunks(customer_ids):
        for cid, placed in session.execute(
            select(Order.customer_id, Order.placed_at).where(
                Order.customer_id.in_(chunk),
                Order.status.in_(COUNTED_ORDER_STATUSES),
                Order.placed_at > earliest,
                Order.placed_at <= latest,
            )
        ):
            orders.setdefault(cid, []).append(placed)
        # last_contact_at moves only for the customer's own messages (bot/crm/queries.started_by_us).
        wrote.update(
            session.execute(select(Customer.id, Customer.last_contact_at).where(Customer.id.in_(chunk)))
            .tuples()
            .all()
        )
    found: list[tuple[str, datetime] | None] = []
    for episode, until in windows:
        inside = [p for p in orders.get(episode.customer_id, ()) if episode.started_at < p <= until]
        ordered = min(inside) if inside else None
        message = wrote.get(episode.customer_id)
        message = message if message is not None and episode.started_at < message <= until else None
        options = [
            (when, how) for how, when in (("order", ordered), ("message", message)) if when is not None
        ]
        if not options:
            found.append(None)
            continue
        when, how = min(options)
        found.append((how, when))
    return found


def link_delivery(*, session: Session, episode: DriftEpisode, key: str) -> None:
    """Remember the check-in delivery the episode queued, by its idempotency key."""
    episode.delivery_id = session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key))


def checkin_key(episode: DriftEpisode) -> str:
    """The check-in's idempotency key: one per quiet spell, as the silence check-in always had."""
    return f"silence:customer:{episode.customer_id}:since:{episode.last_active_at:%Y-%m-%d}"


# ----- the tasks for a person (the Cases page) -----

TASK_TEAM = Team.CUSTOMER_CARE  # who calls a drifting valuable customer
NOTE_LIMIT = 1000


class TaskError(ValueError):
    """A task that cannot be marked done, with the words the console shows."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class TaskRow:
    episode_id: int
    customer_id: int
    customer: str  # the customer's name, for the person who calls
    segment: str
    started_at: datetime
    reasons: list[str]


def sees_tasks(*, role: Role, teams: Collection[str]) -> bool:
    """Admins and the team that calls drifting customers see their tasks."""
    return role is Role.ADMIN or TASK_TEAM.value in teams


def open_tasks(*, session: Session, limit: int = 100) -> list[TaskRow]:
    """Drifting MVC and MCC customers nobody has called yet, the longest waiting first."""
    rows = session.execute(
        select(DriftEpisode, Customer.first_name, Customer.last_name)
        .join(Customer, Customer.id == DriftEpisode.customer_id)
        .where(
            DriftEpisode.action == "task",
            DriftEpisode.task_done_at.is_(None),
            DriftEpisode.ended_at.is_(None),
            Customer.erased_at.is_(None),
        )
        .order_by(DriftEpisode.started_at, DriftEpisode.id)
        .limit(limit)
    ).all()
    return [
        TaskRow(
            episode_id=episode.id,
            customer_id=episode.customer_id,
            customer=" ".join(n for n in (first, last) if n) or f"customer {episode.customer_id}",
            segment=episode.segment.value,
            started_at=episode.started_at,
            reasons=[r["text"] for r in episode.reasons],
        )
        for episode, first, last in rows
    ]


def finish_task(
    *, session: Session, episode_id: int, agent_id: int, note: str, now: datetime
) -> DriftEpisode:
    """Mark a drifting customer's task done by a person, with what came of the call."""
    note = note.strip()
    if len(note) > NOTE_LIMIT:
        raise TaskError(f"The note is {len(note)} characters; {NOTE_LIMIT} at most.")
    episode = session.get(DriftEpisode, episode_id)
    if episode is None or episode.action != "task":
        raise TaskError("There is no such task.", status=404)
    if episode.task_done_at is not None:
        raise TaskError("Someone already marked this task done.", status=409)
    episode.task_done_at, episode.task_agent_id, episode.task_note = now, agent_id, note or None
    session.flush()
    return episode


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
