"""Dates and times the way a customer reads them: in their time zone, in words."""

from __future__ import annotations

from datetime import datetime

from bot.crm.zones import zone_named

zone = zone_named  # the customer's zone by name, UTC when unknown


def day(moment: datetime, tz: str | None) -> str:
    """`Tue 25 Nov` in the customer's zone."""
    return moment.astimezone(zone(tz)).strftime("%a %-d %b")


def due_phrase(due: datetime, now: datetime, tz: str | None) -> str:
    """When something will happen, relative and concrete: "within 4 hours", "by tomorrow, 14:00"."""
    hours = (due - now).total_seconds() / 3600
    if hours <= 12:
        return f"within {max(1, round(hours))} hour{'s' if round(hours) > 1 else ''}"
    local_due, local_now = due.astimezone(zone(tz)), now.astimezone(zone(tz))
    days = (local_due.date() - local_now.date()).days
    when = "tomorrow" if days == 1 else local_due.strftime("%A %-d %B")
    return f"by {when}, {local_due.strftime('%H:%M')}"


def moment_in_zone(when: datetime, tz: str | None) -> str:
    """`Monday 7 December, 14:00 (Europe/Berlin time)`: a promised time, naming the zone it is in."""
    place = zone(tz)
    return f"{when.astimezone(place).strftime('%A %-d %B, %H:%M')} ({place.key} time)"


def promised_by(due: datetime, now: datetime, tz: str | None) -> str:
    """`by 14:00 today (Europe/Berlin time)`, `by 09:00 tomorrow, Saturday 5 December (…)` or
    `by Monday 7 December, 14:00 (…)`: a promise the customer can hold us to, in their zone, named."""
    place = zone(tz)
    local_due, local_now = due.astimezone(place), now.astimezone(place)
    days = (local_due.date() - local_now.date()).days
    clock, named = local_due.strftime("%H:%M"), f"({place.key} time)"
    if days <= 0:
        return f"by {clock} today {named}"
    if days == 1:
        return f"by {clock} tomorrow, {local_due.strftime('%A %-d %B')} {named}"
    return f"by {local_due.strftime('%A %-d %B')}, {clock} {named}"
