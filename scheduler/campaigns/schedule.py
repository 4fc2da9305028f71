"""When a campaign sends: once or repeating, in each customer's own zone or one moment for all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from scheduler.audience import InvalidAudience

EVERY = ("once", "day", "week")


ZONES = ("local", "utc")  # each customer's own time, or one moment for everyone


# The first and last places on Earth where a local date and time happens.
EARLIEST_ZONE, LATEST_ZONE = timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))


@dataclass(frozen=True)
class Schedule:
    """When: a date and time in each customer's own zone (`zone` "local"), or one moment for
    everyone (`zone` "utc", e.g. "send now"); once or repeating."""

    start: date
    at: time
    every: str = "once"
    zone: str = "local"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Schedule:
        try:
            start = date.fromisoformat(str(data["date"]))
            at = time.fromisoformat(str(data.get("time", "10:00")))
        except (KeyError, ValueError):
            raise InvalidAudience("the schedule needs a date (YYYY-MM-DD) and a time (HH:MM)") from None
        every = str(data.get("every", "once"))
        if every not in EVERY:
            raise InvalidAudience(f"every must be one of {', '.join(EVERY)}")
        zone = str(data.get("zone", "local"))
        if zone not in ZONES:
            raise InvalidAudience(f"zone must be one of {', '.join(ZONES)}")
        return cls(start, at, every, zone)

    def as_dict(self) -> dict[str, str]:
        data = {"date": self.start.isoformat(), "time": self.at.strftime("%H:%M"), "every": self.every}
        return data if self.zone == "local" else {**data, "zone": self.zone}

    def occurrences_until(self, day: date) -> list[date]:
        """Every occurrence from the start up to and including `day`."""
        if day < self.start:
            return []
        if self.every == "once":
            return [self.start]
        step = 1 if self.every == "day" else 7
        return [self.start + timedelta(days=n) for n in range(0, (day - self.start).days + 1, step)]

    def first_send(self, zone: timezone) -> datetime:
        """The first occurrence's moment for a customer in `zone`."""
        return self.moment(self.start, zone)

    def moment(self, day: date, zone: tzinfo) -> datetime:
        """An occurrence's moment for a customer in `zone` (the same moment everywhere in UTC mode)."""
        return datetime.combine(day, self.at, tzinfo=timezone.utc if self.zone == "utc" else zone)


def check_not_past(schedule: Schedule, now: datetime) -> None:
    """Refuse a first send that has already passed in every time zone on Earth (in UTC mode: passed)."""
    if schedule.first_send(LATEST_ZONE) <= now:
        when = f"{schedule.start.isoformat()} {schedule.at.strftime('%H:%M')}"
        everywhere = schedule.zone == "local"
        where = " has already passed in every time zone" if everywhere else " UTC has already passed"
        raise InvalidAudience(f"{when}{where}: choose a later date or time")


def begun_somewhere(schedule: Schedule, now: datetime) -> bool:
    """The first send's local time has passed in some zones (customers there get it at once)."""
    return schedule.first_send(EARLIEST_ZONE) <= now
