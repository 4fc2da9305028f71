"""Time as CareLoop keeps it: aware and in UTC, whatever the database hands back."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


@overload
def as_utc(moment: datetime) -> datetime: ...


@overload
def as_utc(moment: None) -> None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """The moment made aware: SQLite hands timestamps back naive, and they are UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@overload
def aggregate_time(value: datetime | str) -> datetime: ...


@overload
def aggregate_time(value: datetime | str | None) -> datetime | None: ...


def aggregate_time(value: datetime | str | None) -> datetime | None:
    """A timestamp from an aggregate (max, min), which bypasses the column type: SQLite gives
    naive UTC, or even text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)
