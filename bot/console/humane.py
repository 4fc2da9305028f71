"""What the console shows people instead of raw numbers: waits in hours and days, how urgent a chat
or callback is (in words, not colour alone), why a chat has its priority, and a guest's name made
of what is known about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.crm.clock import as_utc
from bot.crm.handoffs import priority_parts
from bot.crm.labels import label
from bot.crm.models import HANDOFF_CALLBACK, Segment, Temperament

DUE_SOON = timedelta(minutes=30)  # a callback due within this is flagged before it is late
LIVE_OVERDUE = timedelta(minutes=10)  # a live chat waiting longer than this is flagged
LIVE_WAITING_LONG = timedelta(minutes=5)


@dataclass(frozen=True)
class Urgency:
    level: str  # "overdue", "due-soon" or "" (a CSS class and a test hook)
    text: str  # the same in words, for people who do not see the colour


def duration(seconds: float) -> str:
    """A span in the largest units that matter: "45 s", "12 min", "2 h 15 min", "1 day 3 h"."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"


def urgency(*, mode: str, requested_at: datetime, callback_by: datetime | None, now: datetime) -> Urgency:
    """How urgent a waiting handoff is: a callback against its promised time, a live chat by its wait."""
    requested_at, now = as_utc(requested_at), as_utc(now)
    if mode == HANDOFF_CALLBACK and callback_by is not None:
        left = as_utc(callback_by) - now
        if left < timedelta(0):
            return Urgency("overdue", f"Callback overdue by {_rounded(-left)}")
        if left <= DUE_SOON:
            return Urgency("due-soon", f"Callback due in {duration(left.total_seconds())}")
        return Urgency("", f"Callback due in {_rounded(left)}")
    waited = now - requested_at
    if waited >= LIVE_OVERDUE:
        return Urgency("overdue", f"Waiting too long: {duration(waited.total_seconds())}")
    if waited >= LIVE_WAITING_LONG:
        return Urgency("due-soon", f"Waiting {duration(waited.total_seconds())}")
    return Urgency("", f"Waiting {duration(waited.total_seconds())}")


def priority_words(
    *, total: int, segment: str, reason: str, temperament: str, churn_risk: float = 0.0
) -> str:
    """Why a chat has its priority, e.g. "Priority 65: most valuable (MVC) +40, wants to cancel +20, …"."""
    parts = priority_parts(
        total=total,
        segment=Segment(segment),
        reason=reason,
        temperament=Temperament(temperament),
        churn_risk=churn_risk,
    )
    named = ", ".join(f"{_factor(code)} +{points}" for code, points in parts)
    return f"Priority {total}: {named}" if named else f"Priority {total}"


def guest_name(*, name: str | None, channel: str, messages: int, email: bool, phone: bool = False) -> str:
    """A customer by name, or a guest by what is known: "Guest from the website, 3 messages, email given"."""
    if name:
        return name
    where = label(channel, "Channel")
    known = [f"{messages} message{'' if messages == 1 else 's'}"]
    if email:
        known.append("email given")
    if phone:
        known.append("phone given")
    return f"Guest from {'Telegram' if where == 'Telegram' else where}, {', '.join(known)}"


def _factor(code: str) -> str:
    kind, _, value = code.partition(":")
    if kind == "segment":
        return label(value, "Segment")
    if kind == "reason":
        return label(value, "handoff_reason")
    if kind == "temperament":
        return "irritable temperament"
    if kind == "churn":
        return f"churn risk {value}%"
    if kind == "severity":
        return f"open complaint of {label(value, 'Severity')}"
    return "other factors at the time"


def _rounded(span: timedelta) -> str:
    """Overdue and due times in whole units: "1 day", "3 h 20 min"."""
    return duration(span.total_seconds() // 60 * 60)
