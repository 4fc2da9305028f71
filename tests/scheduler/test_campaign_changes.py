"""What a marketer may do to a campaign, and when: times in the past, state changes, edits until
sending starts, a pause that a sweep cannot overwrite, and why a delivery is waiting."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.consent import set_consent
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Channel,
    ChannelIdentity,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
)
from scheduler.audience import InvalidAudience
from scheduler.campaigns.fanout import due_occurrences, fan_out
from scheduler.campaigns.figures import occurrence_figures
from scheduler.campaigns.lifecycle import change_status, create_campaign, editable, update_campaign
from scheduler.campaigns.schedule import Schedule, begun_somewhere, check_not_past
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.factories import make_customer
from tests.scheduler.standin_gateway import StandInGateway

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    return sessionmaker(bind=make_engine(url), expire_on_commit=False)


def new_campaign(session: Session, *, draft: bool = False, day: date = date(2026, 6, 20)) -> Campaign:
    return create_campaign(
        session=session,
        name="Summer",
        message="Hi {first_name}!",
        audience={},
        schedule={"date": day.isoformat(), "time": "10:00"},
        now=NOW,
        draft=draft,
    )


@pytest.mark.parametrize(
    ("day", "at", "past_everywhere", "begun_somewhere_"),
    [
        ("2026-06-16", "10:00", False, False),  # tomorrow: nowhere yet
        ("2026-06-15", "13:00", False, True),  # 13:00 today has passed in Tokyo (21:00 there), not in Berlin
        ("2026-06-15", "09:00", False, True),  # 09:00 today: still to come at UTC-12 (00:00 there)
        ("2026-06-14", "23:00", True, True),  # yesterday 23:00 at UTC-12 was 11:00 UTC today
        ("2026-06-14", "10:00", True, True),
    ],
)
def test_a_time_in_the_past_is_judged_across_all_time_zones(
    day: str, at: str, past_everywhere: bool, begun_somewhere_: bool
) -> None:
    schedule = Schedule.parse({"date": day, "time": at})
    if past_everywhere:
        with pytest.raises(InvalidAudience, match="has already passed in every time zone"):
            check_not_past(schedule, NOW)
    else:
        check_not_past(schedule, NOW)
    assert begun_somewhere(schedule, NOW) is begun_somewhere_


def test_state_changes_follow_the_allowed_paths(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        campaign = new_campaign(session, draft=True)
        assert campaign.status is CampaignStatus.DRAFT
        with pytest.raises(InvalidAudience, match="a draft campaign cannot be paused"):
            change_status(session=session, campaign=campaign, action="pause", actor="test")
        steps = [
            ("schedule", CampaignStatus.SCHEDULED),
            ("pause", CampaignStatus.PAUSED),
            ("schedule", CampaignStatus.SCHEDULED),
            ("cancel", CampaignStatus.CANCELLED),
        ]
        for action, status in steps:
            change_status(session=session, campaign=campaign, action=action, actor="test", now=NOW)
            assert campaign.status is status
        for action in ("schedule", "pause", "cancel"):
            with pytest.raises(InvalidAudience, match="a cancelled campaign cannot be"):
                change_status(session=session, campaign=campaign, action=action, actor="test")
        with pytest.raises(InvalidAudience, match="unknown action 'go'"):
            change_status(session=session, campaign=campaign, action="go", actor="test")


def test_cancelling_skips_what_was_not_sent(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.add_all([Customer(first_name="A"), Customer(first_name="B")])
        campaign = new_campaign(session, day=NOW.date())
        assert fan_out(session=session, campaign=campaign, occurrence=NOW.date(), now=NOW) == 2
        first = session.scalars(select(Delivery).order_by(Delivery.id)).first()
        assert first is not None
        first.status, first.sent_at = DeliveryStatus.SENT, NOW
        change_status(session=session, campaign=campaign, action="cancel", actor="test")
        rows = session.execute(select(Delivery.status, Delivery.skip_reason).order_by(Delivery.id)).all()
    assert [tuple(r) for r in rows] == [
        (DeliveryStatus.SENT, None),
        (DeliveryStatus.SKIPPED, "campaign_cancelled"),
    ]


def test_a_campaign_can_be_edited_only_until_it_is_fanned_out(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.add(Customer(first_name="Anna"))
        campaign = new_campaign(session, day=NOW.date())
        edit = {
            "name": "Summer sale",
            "message": "Hello {first_name}",
            "audience": {"segments": ["MVC"]},
            "schedule": {"date": "2026-06-15", "time": "18:00", "every": "week"},
            "buttons": ["Show me"],
        }
        update_campaign(session=session, campaign=campaign, **edit, actor="test", now=NOW)
        assert (campaign.name, campaign.message, campaign.audience, campaign.schedule, campaign.buttons) == (
            "Summer sale",
            "Hello {first_name}",
            {"segments": ["MVC"]},
            {"date": "2026-06-15", "time": "18:00", "every": "week"},
            [{"title": "Show me"}],
        )
        with pytest.raises(InvalidAudience, match="has already passed in every time zone"):
            update_campaign(
                session=session,
                campaign=campaign,
                **{**edit, "schedule": {"date": "2026-06-01"}},
                actor="t",
                now=NOW,
            )
        update_campaign(session=session, campaign=campaign, **{**edit, "audience": {}}, actor="test", now=NOW)
        assert fan_out(session=session, campaign=campaign, occurrence=NOW.date(), now=NOW) == 1
        assert not editable(session=session, campaign=campaign)
        with pytest.raises(InvalidAudience, match="can no longer be changed"):
            update_campaign(session=session, campaign=campaign, **edit, actor="test", now=NOW)
        payload = session.scalars(select(Delivery)).one().payload
    assert payload == {"campaign_text": "Hello Anna", "campaign_button_1": "Show me"}


def test_a_pause_made_while_a_sweep_runs_is_not_overwritten(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.add(Customer(first_name="Anna"))
        campaign_id = new_campaign(session, day=NOW.date()).id
    sweep = factory()
    seen = sweep.get_one(Campaign, campaign_id)  # the sweep has read it as scheduled …
    assert seen.status is CampaignStatus.SCHEDULED
    with factory.begin() as marketer:  # … when the marketer pauses it
        change_status(
            session=marketer, campaign=marketer.get_one(Campaign, campaign_id), action="pause", actor="test"
        )
    assert fan_out(session=sweep, campaign=seen, occurrence=NOW.date(), now=NOW) == 0
    sweep.commit()
    sweep.close()
    with factory() as session:
        assert session.get_one(Campaign, campaign_id).status is CampaignStatus.PAUSED
        assert session.scalars(select(Delivery)).all() == []


def test_a_delivery_delayed_by_quiet_hours_says_so_until_it_is_sent(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        customer = Customer(first_name="Emi", timezone="Asia/Tokyo")  # 21:00 in Tokyo at NOW
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id="emi"))
        session.add(customer)
        session.flush()
        set_consent(
            session=session,
            customer=customer,
            purpose=ConsentPurpose.MARKETING,
            granted=True,
            source="t",
            now=NOW,
        )
        campaign = new_campaign(session, day=NOW.date())
        fan_out(session=session, campaign=campaign, occurrence=NOW.date(), now=NOW)
    policy = Policy.parse("21:00-09:00", weekly_cap=3)
    clock = [NOW]
    with StandInGateway() as gateway:
        sender = Sender(
            factory,
            HttpGateway(gateway.url, gateway.token),
            policy,
            clock=lambda: clock[0],
            rate_per_second=0,
        )
        assert sender.run_due() == {"delayed": 1}
        with factory() as session:
            delivery = session.scalars(select(Delivery)).one()
            assert (delivery.status, delivery.skip_reason) == (DeliveryStatus.QUEUED, "quiet_hours")
            assert delivery.scheduled_for.replace(tzinfo=timezone.utc) == datetime(
                2026, 6, 16, 0, 0, tzinfo=timezone.utc
            )  # 09:00 in Tokyo
        clock[0] = datetime(2026, 6, 16, 0, 0, tzinfo=timezone.utc)
        assert sender.run_due() == {"sent": 1}
    with factory() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.status, delivery.skip_reason) == (DeliveryStatus.SENT, None)


def test_figures_per_occurrence_of_a_weekly_campaign(session: Session) -> None:
    weekly = create_campaign(
        session=session,
        name="Weekly tips",
        message="Hi {first_name}!",
        audience={},
        schedule={"date": "2026-06-20", "time": "10:00", "every": "week"},
        now=NOW,
    )
    customers = [make_customer(session) for _ in range(3)]
    session.flush()
    days = [date(2026, 6, 20) + timedelta(days=7 * week) for week in range(4)]
    for day in days:
        fan_out(session=session, campaign=weekly, occurrence=day, now=NOW)
    session.flush()
    deliveries = session.scalars(select(Delivery).where(Delivery.campaign_id == weekly.id)).all()
    assert len(deliveries) == 4 * len(customers)
    for delivery in deliveries:
        if days[1].isoformat() in delivery.idempotency_key:
            delivery.status, delivery.sent_at, delivery.replied_at = DeliveryStatus.SENT, NOW, NOW
        elif days[2].isoformat() in delivery.idempotency_key:
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, "no_consent"
    session.flush()
    newest_three = occurrence_figures(session=session, campaign_id=weekly.id, limit=3)
    assert [day for day, _ in newest_three] == [days[3], days[2], days[1]]
    assert newest_three[0][1] == {"queued": 3, "replied": 0, "total": 3}
    assert newest_three[1][1] == {"skipped:no_consent": 3, "replied": 0, "total": 3}
    assert newest_three[2][1] == {"sent": 3, "replied": 3, "total": 3}


def test_in_utc_mode_everyone_gets_it_at_the_same_moment(session: Session) -> None:
    at_once = create_campaign(
        session=session,
        name="Flash sale",
        message="Hi {first_name}!",
        audience={},
        schedule={"date": "2026-06-15", "time": "12:01", "every": "once", "zone": "utc"},
        now=NOW,
    )
    assert at_once.schedule == {"date": "2026-06-15", "time": "12:01", "every": "once", "zone": "utc"}
    for zone in ("Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"):
        make_customer(session, timezone=zone)
    session.flush()
    assert due_occurrences(campaign=at_once, now=NOW) == [date(2026, 6, 15)]
    fan_out(session=session, campaign=at_once, occurrence=date(2026, 6, 15), now=NOW)
    session.flush()
    moments = {
        d.scheduled_for for d in session.scalars(select(Delivery).where(Delivery.campaign_id == at_once.id))
    }
    assert moments == {datetime(2026, 6, 15, 12, 1, tzinfo=timezone.utc)}
    # Tomorrow's UTC date has begun in Kiribati but not in UTC: nothing due for it yet.
    tomorrow = Schedule.parse({"date": "2026-06-16", "time": "00:00", "zone": "utc"})
    assert not begun_somewhere(tomorrow, NOW)
    with pytest.raises(InvalidAudience, match="12:00 UTC has already passed"):
        check_not_past(Schedule.parse({"date": "2026-06-15", "time": "12:00", "zone": "utc"}), NOW)
    with pytest.raises(InvalidAudience, match="zone must be one of local, utc"):
        Schedule.parse({"date": "2026-06-15", "time": "12:00", "zone": "mars"})
