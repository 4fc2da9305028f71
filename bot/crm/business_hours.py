"""When people are at work: opening hours per weekday in the business's time zone.

The spec is what an admin writes in `BUSINESS_HOURS`, e.g. ``mon-fri 08:00-20:00, sat 09:00-16:00``:
comma-separated entries of a weekday or a weekday range and one time range (``24:00`` is the end
of the day). Days not named are closed. ``mon-sun 00:00-24:00`` means always open.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
END_OF_DAY = 24 * 60
LONGEST_SEARCH_DAYS = 400  # a spec open one hour a week still ends a 72-hour promise within this


class BadBusinessHours(ValueError):
    """The spec cannot be read; the message says what to write instead."""


@dataclass(frozen=True)
class BusinessHours:
    """Opening minutes per weekday (Monday = 0) in one time zone."""

    zone: ZoneInfo
    windows: dict[int, list[tuple[int, int]]]  # weekday → [(start minute, end minute)]

    @classmethod
    def parse(cls, spec: str, timezone: str) -> BusinessHours:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise BadBusinessHours(f"unknown time zone {timezone!r} (use e.g. Europe/Berlin)") from error
        windows: dict[int, list[tuple[int, int]]] = {}
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            days, _, hours = entry.partition(" ")
            start, end = _minutes_range(hours.strip(), entry)
            for day in _days(days.strip().lower(), entry):
                windows.setdefault(day, []).append((start, end))
        return cls(zone, {day: sorted(spans) for day, spans in windows.items()})

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.windows.get(local.weekday(), []))

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment the business opens after `now` (None if it never opens)."""
        local = now.astimezone(self.zone)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            for start, _ in self.windows.get(day.weekday(), []):
                opening = datetime.combine(day, time(start // 60, start % 60), tzinfo=self.zone)
                if opening > local:
                    return opening
        return None

    def add_open_time(self, start: datetime, span: timedelta) -> datetime | None:
        """The moment `span` of opening time has passed since `start` (closed hours do not count);
        None if the business never opens. A promise made at 19:30 with 2 hours to keep, closing at
        20:00, falls 90 minutes after the next opening, not at 21:30 when nobody is there."""
        moment, left = start.astimezone(timezone.utc), span
        for opens, closes in self.windows_from(moment):
            begin = max(opens, moment)
            if closes - begin >= left:
                return begin + left
            left -= closes - begin
        return None

    def open_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The opening time between two moments."""
        total = timedelta(0)
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        for opens, closes in self.windows_from(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def windows_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The opening windows that end after `moment`, in order, as UTC moments (so that sums stay
        right across a DST change); none at all when the business never opens."""
        if not any(self.windows.values()):
            return
        first = moment.astimezone(self.zone).date()
        for offset in range(LONGEST_SEARCH_DAYS):
            for opens, closes in self._windows_on(first + timedelta(days=offset)):
                if closes > moment:
                    yield opens, closes

    def _windows_on(self, day: date) -> list[tuple[datetime, datetime]]:
        midnight = datetime.combine(day, time(0), tzinfo=self.zone)
        return [
            (
                _at(day, start, self.zone),
                _at(day, end, self.zone) if end < END_OF_DAY else _next_midnight(midnight),
            )
            for start, end in self.windows.get(day.weekday(), [])
        ]


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(timezone.utc)


def _next_midnight(midnight: datetime) -> datetime:
    following = midnight.date() + timedelta(days=1)
    return datetime.combine(following, time(0), tzinfo=midnight.tzinfo).astimezone(timezone.utc)


def _days(text: str, entry: str) -> list[int]:
    first, _, last = text.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise BadBusinessHours(
            f"{entry!r}: days are mon, tue, wed, thu, fri, sat, sun or a range like mon-fri"
        )
    start, end = DAYS.index(first), DAYS.index(last or first)
    return list(range(start, end + 1)) if start <= end else [*range(start, 7), *range(0, end + 1)]


def _minutes_range(text: str, entry: str) -> tuple[int, int]:
    start_text, _, end_text = text.partition("-")
    start, end = _minute(start_text, entry), _minute(end_text, entry)
    if start >= end:
        raise BadBusinessHours(f"{entry!r}: the opening time must be before the closing time")
    return start, end


def _minute(text: str, entry: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise BadBusinessHours(f"{entry!r}: write times as HH:MM, e.g. mon-fri 08:00-20:00")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > END_OF_DAY:
        raise BadBusinessHours(f"{entry!r}: {text.strip()} is not a time of day")
    return value
