"""How a case's clock counts: the time promised to the customer, and how much of it is used.

A team that works office hours (`SLA_OFFICE_HOURS_TEAMS`, open during `BUSINESS_HOURS`) counts only
the time it is open: a four-hour promise made on Friday at 19:00, closing at 20:00, ends three
opening hours into Saturday. Every other team counts the clock's hours. The promise the bot gives in
chat (`bot.crm.complaints.sla_due`) and the clock the Cases page and the scheduler read
(`SlaRules.share_used`) are both `SlaRules.due` / `SlaRules.counted`, so they cannot disagree.

The clock of a case runs from `sla_started_at` (filing, or the customer's "it is still broken") to
`sla_due_at` (the promise, which the scheduler may move once per round with an honest update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from bot.crm.business_hours import BusinessHours

if TYPE_CHECKING:  # settings build SlaRules: no models (and no SQLAlchemy) at their import
    from bot.crm.models import Complaint

AT_RISK_SHARE = 0.75  # of the promised time used: the team is warned
UPDATE_SHARE = 0.9  # the customer hears that we need longer, while the promise still holds
EXTENSION_SHARE = 0.5  # the new promise gives the team half the first one again
ROUND_TO = timedelta(minutes=15)  # a new time the customer can read: 18:00, 18:15, …


@dataclass(frozen=True)
class SlaRules:
    """The clock's thresholds, and which teams count office hours only."""

    at_risk_share: float = AT_RISK_SHARE
    update_share: float = UPDATE_SHARE
    office_hours: BusinessHours | None = None
    office_teams: frozenset[str] = frozenset()

    def hours_of(self, team: str) -> BusinessHours | None:
        """The opening hours `team` counts, or None when it counts every hour."""
        if (
            self.office_hours is None
            or team not in self.office_teams
            or not any(self.office_hours.windows.values())
        ):
            return None
        return self.office_hours

    def due(self, *, team: str, start: datetime, span: timedelta) -> datetime:
        """The moment `span` of the team's counted time has passed since `start`."""
        hours = self.hours_of(team)
        # Opening hours so sparse that the search gives up count every hour rather than never end.
        return (hours.add_open_time(start, span) if hours else None) or start + span

    def promise(self, *, team: str, start: datetime, span: timedelta) -> datetime:
        """The time promised to a customer: `due`, moved to the next opening when it would fall
        while nobody is at work (a team counting every hour would otherwise promise 05:41)."""
        return self.when_open(self.due(team=team, start=start, span=span))

    def when_open(self, moment: datetime) -> datetime:
        """`moment` when the business is open then (or closes then), else its next opening."""
        hours = self.office_hours
        if hours is None or not any(hours.windows.values()):
            return moment
        if hours.is_open(moment) or hours.is_open(moment - timedelta(seconds=1)):
            return moment
        return hours.next_opening(moment) or moment

    def counted(self, *, team: str, start: datetime, end: datetime) -> timedelta:
        """The team's counted time between two moments (zero if `end` is not after `start`)."""
        if end <= start:
            return timedelta(0)
        hours = self.hours_of(team)
        return end - start if hours is None else hours.open_time_between(start, end)

    def share_used(self, complaint: Complaint, now: datetime) -> float:
        """How much of the promised time is used (1.0 and more: the promise has passed)."""
        if now >= complaint.sla_due_at:
            return 1.0 + (now - complaint.sla_due_at) / timedelta(days=1)
        start = started(complaint)
        promised = self.counted(team=complaint.team, start=start, end=complaint.sla_due_at)
        if promised <= timedelta(0):
            return 1.0
        return self.counted(team=complaint.team, start=start, end=now) / promised

    def moment_at(self, complaint: Complaint, share: float) -> datetime:
        """When `share` of the case's promised time will have been used."""
        start = started(complaint)
        promised = self.counted(team=complaint.team, start=start, end=complaint.sla_due_at)
        return min(self.due(team=complaint.team, start=start, span=promised * share), complaint.sla_due_at)

    def extended(self, complaint: Complaint, *, not_before: datetime) -> datetime:
        """The new promise: half the first promise again after the old one (counted the team's way),
        at least an hour after `not_before`, on a quarter hour the customer can read."""
        start = started(complaint)
        promised = self.counted(team=complaint.team, start=start, end=complaint.sla_due_at)
        span = max(promised * EXTENSION_SHARE, timedelta(hours=1))
        after = max(complaint.sla_due_at, not_before)
        return round_up(self.due(team=complaint.team, start=after, span=span))


WALL_CLOCK = SlaRules()  # every team counts every hour; the thresholds' defaults


def alert_key(complaint_id: int, round_: int, state: str) -> str:
    """The unique key of one step of the clock (`case_alert.key`)."""
    return f"sla:complaint:{complaint_id}:round:{round_}:{state}"


def started(complaint: Complaint) -> datetime:
    """When the case's current promise was made (filing, or reopening)."""
    return complaint.sla_started_at or complaint.created_at


def round_up(moment: datetime) -> datetime:
    """The next quarter hour (UTC), or `moment` itself when it is one."""
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    steps = math.ceil((moment - epoch) / ROUND_TO)
    return epoch + steps * ROUND_TO
