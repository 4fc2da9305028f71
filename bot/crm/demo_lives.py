"""How each demo customer lives with the shop: a process, so that who leaves follows from what happened.

Every customer buys at their own pace: gaps around their usual interval. Each week a customer may
decide to leave. The chance is small, depends on the kind of customer, and is several times larger
for four months after a complaint that ended badly (resolved later than we promised). A customer who
has decided drifts for one to four months first: orders come more slowly, our messages go
unanswered, they write less, a member asks to cancel near the end. Then they stop: no order, no
message of their own. Nobody is labelled a leaver; `make churn-eval` (bot/crm/churn_eval.py) has to
find them from what the CRM recorded, as of a day in the past.

Pure: one random stream in, one `Life` out; bot/crm/demo.py writes it into the CRM.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

WEEK = timedelta(days=7)
# The chance per week that a contented customer decides to leave, by the kind of customer.
WEEKLY_LEAVING = {
    "loyal_big": 0.0015,
    "regular": 0.003,
    "occasional": 0.005,
    "new_frequent": 0.006,
    "growing": 0.0015,
    "troubled": 0.008,
    "lapsed": 0.004,
}
UPSET_FACTOR = 6.0  # how much likelier leaving is while a badly ended complaint still rankles
UPSET_DAYS = 120
DRIFT_DAYS = (30, 120)  # from deciding to leave to the last sign of life
DRIFT_SLOWER = 2.5  # a drifting customer's gaps between orders stretch this much
CHAT_WEEKLY = 0.06  # the chance a contented customer writes to us in a week
CAMPAIGN_WEEKLY = 0.15  # the chance a marketing message reaches them in a week
REPLY_SHARE = 0.35  # of our messages a contented customer answers (a drifting one: 3%)
LATE_SHARE = {"troubled": 0.55}  # of complaints resolved late; the rest of the kinds: DEFAULT_LATE
DEFAULT_LATE = 0.2


@dataclass(frozen=True)
class Grievance:
    """A complaint: when it was filed, whether it ended badly (late) and the rating that followed."""

    at: datetime
    late: bool
    rating: int | None


@dataclass
class Life:
    orders: list[datetime] = field(default_factory=list)
    grievances: list[Grievance] = field(default_factory=list)
    chats: list[datetime] = field(default_factory=list)  # the customer's own messages
    outreach: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # sent, replied
    decided_at: datetime | None = None
    left_at: datetime | None = None
    cancel_asked_at: datetime | None = None  # a member asks to cancel near the end of the drift


def live(
    rng: random.Random,
    *,
    kind: str,
    joined: datetime,
    now: datetime,
    orders: tuple[int, int],
    complaints: tuple[int, int],
    member: bool,
    must_leave_before: datetime | None = None,
) -> Life:
    """Simulate one customer week by week from joining to `now`."""
    life = Life()
    span_days = max(30.0, (now - joined).total_seconds() / 86400)
    usual = max(7.0, span_days / max(1, rng.randint(*orders)))
    weekly_complaint = rng.uniform(*complaints) / (span_days / 7)
    leaving = WEEKLY_LEAVING.get(kind, 0.004)
    late_share = LATE_SHARE.get(kind, DEFAULT_LATE)
    growing = kind == "growing"
    next_order = joined + timedelta(days=usual * rng.uniform(0.05, 1.0))
    upset_until = joined
    t = joined
    while t < now and (life.left_at is None or t < life.left_at):
        week_end = min(now, t + WEEK)
        if life.decided_at is None:
            chance = leaving * (UPSET_FACTOR if t < upset_until else 1.0)
            forced = must_leave_before is not None and t >= must_leave_before - timedelta(days=DRIFT_DAYS[1])
            if forced or rng.random() < chance:
                _decide(rng, life, t, member, must_leave_before)
        drifting = life.decided_at is not None
        stop = min(week_end, life.left_at) if life.left_at else week_end
        while next_order <= stop:
            life.orders.append(next_order)
            pace = (1.8 - 1.3 * (next_order - joined) / (now - joined)) if growing else 1.0
            gap = usual * max(0.3, pace) * rng.lognormvariate(0, 0.5) * (DRIFT_SLOWER if drifting else 1.0)
            next_order += timedelta(days=gap)
        if rng.random() < weekly_complaint * (1.5 if drifting else 1.0):
            at = _within(rng, t, stop)
            late = rng.random() < late_share
            life.grievances.append(Grievance(at, late, _rating(rng, late)))
            if late:
                upset_until = at + timedelta(days=UPSET_DAYS)
        if rng.random() < CHAT_WEEKLY * (0.4 if drifting else 1.0):
            life.chats.append(_within(rng, t, stop))
        if rng.random() < CAMPAIGN_WEEKLY:
            sent = _within(rng, t, week_end)
            answers = rng.random() < (0.03 if drifting else REPLY_SHARE)
            replied = sent + timedelta(hours=rng.randint(1, 40)) if answers else None
            life.outreach.append((sent, replied if replied is not None and replied < now else None))
        t = week_end
    _keep_silent_after_leaving(life, now, rng)
    return life


def _decide(rng: random.Random, life: Life, at: datetime, member: bool, gone_by: datetime | None) -> None:
    life.decided_at = at
    life.left_at = at + timedelta(days=rng.randint(*DRIFT_DAYS))
    if gone_by is not None:
        life.left_at = min(life.left_at, max(at + timedelta(days=DRIFT_DAYS[0]), gone_by))
    if member:
        life.cancel_asked_at = life.left_at - timedelta(days=rng.randint(0, 14))


def _keep_silent_after_leaving(life: Life, now: datetime, rng: random.Random) -> None:
    """Once gone, our messages still go out (we do not know), but nothing comes back."""
    if life.left_at is None:
        return
    t = life.left_at
    while t < now:
        if rng.random() < CAMPAIGN_WEEKLY:
            life.outreach.append((_within(rng, t, min(now, t + WEEK)), None))
        t += WEEK


def _rating(rng: random.Random, late: bool) -> int | None:
    """Most customers rate after a case; a case that ended badly mostly gets a 1 or 2."""
    if rng.random() < 0.4:
        return None
    if late:
        return rng.choice((1, 1, 2, 2, 3))
    return rng.choice((3, 4, 5, 5, 5))


def _within(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * rng.random()
