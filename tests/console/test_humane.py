"""Issue 19: waits in human units, urgency in words, the priority explained, guests named by what is known."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.console.humane import duration, guest_name, priority_words, urgency
from bot.crm.handoffs import priority
from bot.crm.models import HANDOFF_CALLBACK, HANDOFF_LIVE, Segment, Severity, Temperament

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (45, "45 s"),
        (12 * 60, "12 min"),
        (135 * 60, "2 h 15 min"),
        (1362 * 60, "22 h 42 min"),
        (86400, "1 day"),
        (27 * 3600, "1 day 3 h"),
        (3 * 86400, "3 days"),
    ],
)
def test_waits_read_in_the_largest_units_that_matter(seconds: int, words: str) -> None:
    assert duration(seconds) == words


def test_a_callback_due_yesterday_is_flagged_overdue_in_words() -> None:
    late = urgency(
        mode=HANDOFF_CALLBACK,
        requested_at=NOW - timedelta(days=2),
        callback_by=NOW - timedelta(days=1),
        now=NOW,
    )
    assert (late.level, late.text) == ("overdue", "Callback overdue by 1 day")
    soon = urgency(mode=HANDOFF_CALLBACK, requested_at=NOW, callback_by=NOW + timedelta(minutes=20), now=NOW)
    assert (soon.level, soon.text) == ("due-soon", "Callback due in 20 min")
    later = urgency(mode=HANDOFF_CALLBACK, requested_at=NOW, callback_by=NOW + timedelta(hours=2), now=NOW)
    assert later.level == ""


def test_a_live_chat_waiting_long_is_flagged() -> None:
    assert (
        urgency(mode=HANDOFF_LIVE, requested_at=NOW - timedelta(minutes=2), callback_by=None, now=NOW).level
        == ""
    )
    assert urgency(
        mode=HANDOFF_LIVE, requested_at=NOW - timedelta(minutes=6), callback_by=None, now=NOW
    ).level == ("due-soon")
    overdue = urgency(mode=HANDOFF_LIVE, requested_at=NOW - timedelta(minutes=75), callback_by=None, now=NOW)
    assert (overdue.level, overdue.text) == ("overdue", "Waiting too long: 1 h 15 min")


def test_the_priority_is_explained_by_the_factors_that_made_it() -> None:
    total = priority(
        segment=Segment.MVC, severity=Severity.HIGH, reason="retention", temperament=Temperament.IRRITABLE
    )
    words = priority_words(total=total, segment="MVC", reason="retention", temperament="irritable")
    assert words == (
        "Priority 100: most valuable (MVC) +40, open complaint of high severity +30, wants to cancel +20, "
        "irritable temperament +10"
    )
    assert priority_words(total=15, segment="standard", reason="customer_request", temperament="unknown") == (
        "Priority 15: standard +10, the customer asked for a person +5"
    )
    at_risk = priority(
        segment=Segment.STANDARD,
        severity=None,
        reason="customer_request",
        temperament=Temperament.UNKNOWN,
        churn_risk=0.62,
    )
    words = priority_words(
        total=at_risk, segment="standard", reason="customer_request", temperament="unknown", churn_risk=0.62
    )
    assert words == "Priority 27: churn risk 62% +12, standard +10, the customer asked for a person +5"


def test_a_guest_is_named_by_what_is_known() -> None:
    assert guest_name(name=None, channel="web", messages=3, email=True) == (
        "Guest from the website, 3 messages, email given"
    )
    assert (
        guest_name(name="", channel="telegram", messages=1, email=False) == "Guest from Telegram, 1 message"
    )
    assert guest_name(name="Pat Lee", channel="web", messages=3, email=True) == "Pat Lee"
