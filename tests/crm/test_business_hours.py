"""Business hours: the spec an admin writes, open or closed at a moment, and the next opening."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.crm.business_hours import BadBusinessHours, BusinessHours
from bot.settings import Settings, SettingsError

HOURS = BusinessHours.parse("mon-fri 08:00-20:00, sat 09:00-16:00", "Europe/Berlin")


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        ("2026-11-24T07:00:00+00:00", True),  # Tue 08:00 Berlin (UTC+1): opens
        ("2026-11-24T06:59:00+00:00", False),
        ("2026-11-24T18:59:00+00:00", True),
        ("2026-11-24T19:00:00+00:00", False),  # Tue 20:00 Berlin: closed
        ("2026-11-28T10:00:00+00:00", True),  # Saturday 11:00
        ("2026-11-29T10:00:00+00:00", False),  # Sunday
        ("2026-07-07T06:30:00+00:00", True),  # summer time: 08:30 Berlin (UTC+2)
    ],
)
def test_open_or_closed_in_the_business_time_zone(moment: str, is_open: bool) -> None:
    assert HOURS.is_open(datetime.fromisoformat(moment)) is is_open


def test_the_next_opening_skips_closed_days_and_follows_dst() -> None:
    sunday = datetime(2026, 3, 29, 12, 0, tzinfo=timezone.utc)  # Berlin moved to summer time that night
    opening = HOURS.next_opening(sunday)
    assert opening is not None
    assert opening.astimezone(timezone.utc) == datetime(2026, 3, 30, 6, 0, tzinfo=timezone.utc)


def test_ranges_wrap_round_the_week_and_24_00_ends_the_day() -> None:
    weekend = BusinessHours.parse("fri-mon 00:00-24:00", "UTC")
    assert sorted(weekend.windows) == [0, 4, 5, 6]
    assert weekend.is_open(datetime(2026, 11, 29, 23, 59, tzinfo=timezone.utc))


def test_no_hours_means_always_closed() -> None:
    never = BusinessHours.parse("", "UTC")
    assert not never.is_open(datetime(2026, 11, 24, 12, tzinfo=timezone.utc))
    assert never.next_opening(datetime(2026, 11, 24, 12, tzinfo=timezone.utc)) is None


@pytest.mark.parametrize(
    ("spec", "zone", "says"),
    [
        ("mon-fry 08:00-20:00", "UTC", "days are"),
        ("mon-fri 8-20", "UTC", "HH:MM"),
        ("mon 20:00-08:00", "UTC", "before the closing"),
        ("mon 08:00-25:00", "UTC", "not a time of day"),
        ("mon 08:00-18:00", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_a_mistyped_spec_says_what_is_wrong(spec: str, zone: str, says: str) -> None:
    with pytest.raises(BadBusinessHours, match=says):
        BusinessHours.parse(spec, zone)


def test_settings_refuse_to_start_with_unreadable_hours() -> None:
    env = {"RASA_TOKEN": "t", "SECRET_KEY": "s", "BUSINESS_HOURS": "weekdays 9-5"}
    with pytest.raises(SettingsError, match="BUSINESS_HOURS"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        ("2026-11-24T10:00:00+00:00", 2, "2026-11-24T12:00:00+00:00"),  # open all the way
        ("2026-11-24T18:30:00+00:00", 2, "2026-11-25T08:30:00+00:00"),  # 30 min before 20:00, 90 from 08:00
        ("2026-11-27T18:00:00+00:00", 2, "2026-11-28T09:00:00+00:00"),  # Fri 19:00: 1 h, then Sat 09-10
        ("2026-11-28T21:00:00+00:00", 2, "2026-11-30T09:00:00+00:00"),  # Sat night: Mon 08:00 + 2 h
        # Sat 15:00 CET: 1 h; Monday after the switch to summer time: 08:00 CEST (06:00 UTC) + 2 h.
        ("2026-03-28T14:00:00+00:00", 3, "2026-03-30T08:00:00+00:00"),
    ],
)
def test_open_time_is_added_only_while_open(start: str, hours: int, due: str) -> None:
    added = HOURS.add_open_time(datetime.fromisoformat(start), timedelta(hours=hours))
    assert added == datetime.fromisoformat(due)


def test_open_time_always_open_and_never_open() -> None:
    always = BusinessHours.parse("mon-sun 00:00-24:00", "Europe/Berlin")
    start = datetime(2026, 11, 24, 22, 30, tzinfo=timezone.utc)
    assert always.add_open_time(start, timedelta(hours=2)) == start + timedelta(hours=2)  # past midnight
    assert BusinessHours.parse("", "Europe/Berlin").add_open_time(start, timedelta(hours=2)) is None
