"""How a case's clock counts (bot/crm/sla.py): every hour, or only the opening hours of a team that
works office hours; the promise the bot gives at filing is counted the same way as the clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from bot.actions.formatting import due_phrase
from bot.crm.business_hours import BusinessHours
from bot.crm.cases import Clock, clock_of
from bot.crm.complaints import file_complaint, reopen_complaint, sla_due
from bot.crm.models import ComplaintCategory, ComplaintStatus, Segment, Severity
from bot.crm.sla import WALL_CLOCK, SlaRules, round_up
from bot.settings import Settings, SettingsError
from tests.factories import make_customer, make_order

BERLIN = ZoneInfo("Europe/Berlin")
HOURS = BusinessHours.parse("mon-fri 08:00-20:00, sat 09:00-16:00", "Europe/Berlin")
OFFICE = SlaRules(office_hours=HOURS, office_teams=frozenset({"billing"}))
FRIDAY_7PM = datetime(2026, 6, 19, 19, 0, tzinfo=BERLIN)  # an hour before closing


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "span", "team", "due"),
    [
        # four office hours from Friday 19:00: one on Friday, three on Saturday morning
        (FRIDAY_7PM, 4, "billing", berlin(2026, 6, 20, 12, 0)),
        # a team that is not on office hours counts every hour
        (FRIDAY_7PM, 4, "logistics", berlin(2026, 6, 19, 23, 0)),
        # filed on Saturday after closing: Sunday is closed, so Monday morning
        (berlin(2026, 6, 20, 17, 0), 4, "billing", berlin(2026, 6, 22, 12, 0)),
        # filed at night: the clock starts at opening
        (berlin(2026, 6, 17, 2, 0), 2, "billing", berlin(2026, 6, 17, 10, 0)),
        # 24 office hours from Monday 08:00: Monday's 12 and Tuesday's 12
        (berlin(2026, 6, 15, 8, 0), 24, "billing", berlin(2026, 6, 16, 20, 0)),
        # across the change to summer time (29 March 2026): Saturday 15:00 + 1 h, Monday 08:00 + 3 h
        (berlin(2026, 3, 28, 15, 0), 4, "billing", berlin(2026, 3, 30, 11, 0)),
    ],
)
def test_the_promise_counts_the_teams_hours(start: datetime, span: int, team: str, due: datetime) -> None:
    assert OFFICE.due(team=team, start=start, span=timedelta(hours=span)) == due
    if span == 4 and team == "billing":  # a high-severity complaint of a standard customer: the promise
        assert (
            sla_due(severity=Severity.HIGH, segment=Segment.STANDARD, now=start, team=team, rules=OFFICE)
            == due
        )
    # and counting back gives the span again: one function each way, no drift
    assert OFFICE.counted(team=team, start=start, end=due) == timedelta(hours=span)


@pytest.mark.parametrize(
    ("start", "severity", "promised"),
    [
        # a team counting every hour would promise Friday 23:00, when nobody is there: Saturday's opening
        (FRIDAY_7PM, Severity.HIGH, berlin(2026, 6, 20, 9, 0)),
        # Sunday 01:41 + 4 h = 05:41 (the time the issue saw promised): Monday's opening
        (berlin(2026, 6, 21, 1, 41), Severity.HIGH, berlin(2026, 6, 22, 8, 0)),
        # a promise that falls inside opening hours stays as counted
        (berlin(2026, 6, 17, 10, 0), Severity.HIGH, berlin(2026, 6, 17, 14, 0)),
        # closing time itself is still a time someone is at work
        (berlin(2026, 6, 17, 16, 0), Severity.HIGH, berlin(2026, 6, 17, 20, 0)),
    ],
)
def test_a_promise_falls_when_someone_is_at_work(
    start: datetime, severity: Severity, promised: datetime
) -> None:
    due = sla_due(severity=severity, segment=Segment.STANDARD, now=start, team="logistics", rules=OFFICE)
    assert due == promised
    assert HOURS.is_open(due) or HOURS.is_open(due - timedelta(seconds=1))
    # without opening hours (WALL_CLOCK) the promise is the count alone
    assert sla_due(
        severity=severity, segment=Segment.STANDARD, now=start, team="logistics"
    ) == start + timedelta(hours=4)


def test_office_hours_are_summed_between_two_moments() -> None:
    week = HOURS.open_time_between(berlin(2026, 6, 15, 0, 0), berlin(2026, 6, 22, 0, 0))
    assert week == timedelta(hours=5 * 12 + 7)
    assert HOURS.open_time_between(berlin(2026, 6, 21, 1, 0), berlin(2026, 6, 21, 23, 0)) == timedelta(0)


def test_the_clock_of_an_office_hours_case_counts_only_opening_hours(session: Session) -> None:
    customer = make_customer(session, web_id="sla-office", timezone="Europe/Berlin")
    filed = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.BILLING,
        description="Charged twice",
        order=make_order(session, customer, total="200.00"),
        angry=True,
        now=FRIDAY_7PM,
        rules=OFFICE,
    ).complaint
    assert filed.severity is Severity.HIGH and filed.team == "billing"
    assert filed.sla_due_at == berlin(2026, 6, 20, 12, 0)
    # what the bot says in chat is this very time
    assert due_phrase(filed.sla_due_at, FRIDAY_7PM, "Europe/Berlin") == "by tomorrow, 12:00"
    # Saturday 08:30: one office hour of four used (wall clock: 13.5 of 17 hours, at risk)
    assert clock_of(filed, berlin(2026, 6, 20, 8, 30), OFFICE) is Clock.ON_TIME
    assert clock_of(filed, berlin(2026, 6, 20, 8, 30), WALL_CLOCK) is Clock.AT_RISK
    assert clock_of(filed, berlin(2026, 6, 20, 10, 59), OFFICE) is Clock.ON_TIME
    assert clock_of(filed, berlin(2026, 6, 20, 11, 0), OFFICE) is Clock.AT_RISK  # 3 of 4 hours
    assert clock_of(filed, berlin(2026, 6, 20, 12, 0), OFFICE) is Clock.BREACHED
    assert OFFICE.moment_at(filed, 0.9) == berlin(2026, 6, 20, 11, 36)  # 3.6 of 4 office hours


def test_a_reopened_case_gets_a_fresh_clock(session: Session) -> None:
    customer = make_customer(session, web_id="sla-reopen")
    filed = file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.DELIVERY,
        description="Late",
        order=None,
        angry=False,
        now=FRIDAY_7PM - timedelta(days=10),
    ).complaint
    filed.status = ComplaintStatus.RESOLVED
    reopen_complaint(session=session, complaint=filed, customer=customer, now=FRIDAY_7PM)
    assert filed.sla_started_at == FRIDAY_7PM and filed.sla_due_at == FRIDAY_7PM + timedelta(hours=4)
    # ten days since filing do not count against the new four hours
    assert clock_of(filed, FRIDAY_7PM + timedelta(hours=1), WALL_CLOCK) is Clock.ON_TIME


def test_new_promises_fall_on_a_quarter_hour() -> None:
    assert round_up(datetime(2026, 6, 15, 14, 1, tzinfo=timezone.utc)) == datetime(
        2026, 6, 15, 14, 15, tzinfo=timezone.utc
    )
    exact = datetime(2026, 6, 15, 14, 30, tzinfo=timezone.utc)
    assert round_up(exact) == exact


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SLA_OFFICE_HOURS_TEAMS": "billing,sales"}, "no team sales"),
        ({"SLA_AT_RISK_SHARE": "0.95", "SLA_UPDATE_SHARE": "0.9"}, "less than SLA_UPDATE_SHARE"),
        ({"SLA_UPDATE_SHARE": "1.5"}, "between 0 and 1"),
    ],
)
def test_bad_sla_settings_stop_the_start_with_the_reason(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({"RASA_TOKEN": "t", "SECRET_KEY": "s", **env})


def test_sla_settings_reach_the_rules() -> None:
    settings = Settings.from_env(
        {"RASA_TOKEN": "t", "SECRET_KEY": "s", "SLA_OFFICE_HOURS_TEAMS": "billing, quality"}
    )
    rules = settings.sla_rules()
    assert (rules.at_risk_share, rules.update_share) == (0.75, 0.9)
    assert rules.hours_of("quality") is not None and rules.hours_of("logistics") is None
    assert Settings.from_env(settings.to_env()).sla_rules() == rules
