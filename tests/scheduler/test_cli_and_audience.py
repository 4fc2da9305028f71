"""Campaign creation from the CLI and audience selection, with the errors a marketer sees."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.crm.complaints import file_complaint
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Channel, ChannelIdentity, ComplaintCategory, Segment, Temperament, utcnow
from bot.settings import Settings
from scheduler.audience import Audience, InvalidAudience, check_message
from scheduler.campaigns.schedule import Schedule
from scheduler.cli import main
from tests.factories import make_customer


def test_audience_filters(session: Session) -> None:
    now = utcnow()
    vip = make_customer(
        session,
        segment=Segment.MVC,
        temperament=Temperament.PICKY,
        last_contact_at=now - timedelta(days=40),
        churn_risk=0.8,
        tags=["beans", "vip"],
    )
    session.add(ChannelIdentity(customer_id=vip.id, channel=Channel.TELEGRAM, external_id=f"a-{vip.id}"))
    calm = make_customer(
        session, segment=Segment.STANDARD, last_contact_at=now - timedelta(days=2), tags=["beans"]
    )
    file_complaint(
        session=session,
        customer=calm,
        category=ComplaintCategory.OTHER,
        description="x",
        order=None,
        angry=False,
    )

    def members(**filters: object) -> set[int]:
        ids = set(session.scalars(Audience.parse(filters).query(now)))
        return ids & {vip.id, calm.id}

    assert members(segments=["MVC"]) == {vip.id}
    assert members(channels=["telegram"]) == {vip.id}
    assert members(tags=["beans"]) == {vip.id, calm.id}
    assert members(tags=["vip"]) == {vip.id}
    assert members(last_contact_days_min=30) == {vip.id}
    assert members(last_contact_days_max=7) == {calm.id}
    assert members(churn_risk_min=0.5) == {vip.id}
    assert members(has_open_complaint=True) == {calm.id}
    assert members(has_open_complaint=False, temperaments=["picky"]) == {vip.id}


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ({"segments": ["VIP"]}, "segments: VIP not one of"),
        ({"colour": "red"}, "unknown audience filter"),
        ({"last_contact_days_min": "soon"}, "whole number of days"),
        ({"churn_risk_min": 2}, "between 0 and 1"),
    ],
)
def test_bad_audiences_are_explained(audience: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidAudience, match=message):
        Audience.parse(audience)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Hi {name}", "unknown placeholder"),
        ("Hi {first_name", "broken placeholder"),
        ("x" * 1001, "longer"),
    ],
)
def test_bad_messages_are_explained(text: str, message: str) -> None:
    with pytest.raises(InvalidAudience, match=message):
        check_message(text)


def test_schedule_occurrences() -> None:
    weekly = Schedule.parse({"date": "2026-12-01", "time": "10:00", "every": "week"})
    assert [d.isoformat() for d in weekly.occurrences_until(weekly.start + timedelta(days=15))] == [
        "2026-12-01",
        "2026-12-08",
        "2026-12-15",
    ]
    with pytest.raises(InvalidAudience, match="date"):
        Schedule.parse({"date": "tomorrow"})


def test_cli_creates_previews_and_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    with Session(make_engine(url)) as session:
        make_customer(session, first_name="Anna", segment=Segment.MVC)
        session.commit()
    for name, value in {
        "DATABASE_URL": url,
        "RASA_TOKEN": secrets.token_urlsafe(24),
        "SECRET_KEY": secrets.token_urlsafe(24),
        "CARELOOP_VAR_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().database_url == url
    later = (utcnow() + timedelta(days=7)).date().isoformat()
    main(
        [
            "campaign",
            "create",
            "--name",
            "Winter",
            "--message",
            "Hi {first_name}!",
            "--audience",
            '{"segments": ["MVC"]}',
            "--date",
            later,
            "--button",
            "Yes",
        ]
    )
    assert "scheduled for 1 customers; preview: Hi Anna!" in capsys.readouterr().out
    main(["campaign", "pause", "1"])
    assert "now paused" in capsys.readouterr().out
    main(["campaign", "show", "1"])
    assert "Winter (paused)" in capsys.readouterr().out
    main(["campaign", "create", "--name", "Flash", "--message", "Hi", "--date", later, "--zone", "utc"])
    capsys.readouterr()
    main(["campaign", "show", "2"])
    assert "'zone': 'utc'" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="a paused campaign cannot be paused"):
        main(["campaign", "pause", "1"])
    with pytest.raises(SystemExit, match="unknown placeholder"):
        main(["campaign", "create", "--name", "x", "--message", "Hi {nom}", "--date", later])
    with pytest.raises(SystemExit, match="has already passed in every time zone"):
        main(["campaign", "create", "--name", "x", "--message", "Hi", "--date", "2020-01-01"])
