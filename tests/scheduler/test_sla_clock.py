"""The SLA clock acts (scheduler/sla.py), with an injected clock, on SQLite and PostgreSQL: the team
is warned at risk, the customer gets one honest update before the promise passes (through the real
sender and a stand-in gateway), the promise moves in the case history, the lead hears of the breach;
each once, whatever is re-run, restarted or crashes in between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import cases, notices
from bot.crm.complaints import file_complaint
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Agent,
    CaseAlert,
    CaseEvent,
    CaseEventKind,
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintCategory,
    Customer,
    Delivery,
    DeliveryStatus,
    Notice,
    Order,
    OrderStatus,
    OutreachKind,
    Role,
)
from bot.crm.sla import WALL_CLOCK
from scheduler import sla
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.scheduler.standin_gateway import StandInGateway

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)  # Monday, 14:00 in Berlin
POLICY = Policy(quiet_start=time(21, 0), quiet_end=time(9, 0), weekly_cap=3)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A CRM the test commits to: a fresh SQLite file, or the emptied PostgreSQL scratch database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_scratch"))
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    return url


@pytest.fixture
def factory(crm_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(crm_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def person(session: Session, name: str, role: Role, teams: list[str]) -> int:
    agent = Agent(username=name, display_name=name.title(), role=role, password_hash="x")
    session.add(agent)
    session.flush()
    cases.set_teams(session=session, agent_id=agent.id, teams=teams)
    return agent.id


def file_case(
    factory: sessionmaker[Session], *, zone: str = "Europe/Berlin", at: datetime = T0
) -> dict[str, int]:
    """A lead and an agent of Logistics, an agent of Billing, an admin; a high-severity delivery
    complaint (four hours promised) filed at `at` by a web customer living in `zone`."""
    with factory.begin() as session:
        ids = {
            "lead": person(session, "lena", Role.LEAD, ["logistics"]),
            "agent": person(session, "alex", Role.AGENT, ["logistics"]),
            "other": person(session, "bo", Role.AGENT, ["billing"]),
            "admin": person(session, "ada", Role.ADMIN, []),
        }
        customer = Customer(first_name="Mia", timezone=zone)
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=f"sla-{zone}"))
        session.add(customer)
        session.flush()
        order = Order(
            number="T-000001",
            customer_id=customer.id,
            status=OrderStatus.DELIVERED,
            total=200,
            placed_at=at - timedelta(days=5),
            delivered_at=at - timedelta(days=2),
        )
        session.add(order)
        session.flush()
        complaint = file_complaint(
            session=session,
            customer=customer,
            category=ComplaintCategory.DELIVERY,
            description="The parcel never came",
            order=order,
            angry=True,
            now=at,
        ).complaint
        assert complaint.sla_due_at == at + timedelta(hours=4)
        ids["case"], ids["customer"] = complaint.id, customer.id
    return ids


def walk(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    return dict(sla.walk(factory=factory, now=now, rules=WALL_CLOCK, policy=POLICY))


def send(factory: sessionmaker[Session], gateway: StandInGateway, now: datetime) -> dict[str, int]:
    sender = Sender(
        factory, HttpGateway(gateway.url, gateway.token), POLICY, clock=lambda: now, rate_per_second=0
    )
    return dict(sender.run_due())


def notices_of(factory: sessionmaker[Session], agent_id: int) -> list[str]:
    with factory() as session:
        return [n.text for n in reversed(notices.notices_of(session=session, agent_id=agent_id))]


def case_updates(factory: sessionmaker[Session]) -> list[Delivery]:
    with factory() as session:
        return list(session.scalars(select(Delivery).where(Delivery.kind == OutreachKind.CASE_UPDATE)))


def test_warned_at_risk_told_once_before_the_promise_then_escalated(factory: sessionmaker[Session]) -> None:
    ids = file_case(factory)
    promised = T0 + timedelta(hours=4)  # 18:00 in Berlin

    assert walk(factory, T0 + timedelta(hours=1)) == {}
    assert notices_of(factory, ids["agent"]) == []

    # 75 % used, nobody owns the case: the whole team hears of it, nobody else
    assert walk(factory, T0 + timedelta(hours=3)) == {"at_risk": 1}
    assert walk(factory, T0 + timedelta(hours=3, minutes=1)) == {}
    for who in ("agent", "lead"):
        [text] = notices_of(factory, ids[who])
        assert text.startswith(f"Case #{ids['case']} (Logistics) is at risk") and "nobody owns it yet" in text
    assert notices_of(factory, ids["other"]) == notices_of(factory, ids["admin"]) == []
    assert case_updates(factory) == []

    # 90 % used (17:36 in Berlin), the promise still holds: the customer is told, once
    told_at = T0 + timedelta(hours=3, minutes=36)
    assert walk(factory, told_at - timedelta(minutes=1)) == {}
    assert walk(factory, told_at) == {"late": 1}
    [update] = case_updates(factory)
    assert update.idempotency_key == f"case_update:complaint:{ids['case']}:late:0"
    assert update.payload["campaign_text"] == (
        f"An honest update on your complaint (case #{ids['case']}): we said you would hear back by 18:00 "
        "(Europe/Berlin time); we need until 20:00 because nobody in our logistics team has been able to "
        "start on it yet. We're sorry for the wait - you will hear from us by then."
    )
    with factory() as session:
        complaint = session.get_one(Complaint, ids["case"])
        assert complaint.sla_due_at == promised + timedelta(hours=2)
        assert complaint.priority == 1
        [moved] = session.scalars(select(CaseEvent).where(CaseEvent.kind == CaseEventKind.PROMISE)).all()
        assert (moved.from_value, moved.to_value) == (
            str(int(promised.timestamp())),
            str(int((promised + timedelta(hours=2)).timestamp())),
        )
        history = [
            cases.describe(e, cases.agent_names(session))
            for e in cases.history(session=session, complaint_id=ids["case"])
        ]
    assert history[-1] == (
        "SLA clock: the promise moved from Mon 15 Jun 16:00 UTC to Mon 15 Jun 18:00 UTC; "
        "the customer is told why."
    )
    assert "would miss its promise of Mon 15 Jun 16:00 UTC" in notices_of(factory, ids["lead"])[-1]
    assert len(notices_of(factory, ids["agent"])) == 1  # the lead is told, not the whole team again

    with StandInGateway() as gateway:
        # the sender runs a minute later: the customer reads it before 18:00
        assert send(factory, gateway, told_at + timedelta(minutes=1)) == {"sent": 1}
        assert send(factory, gateway, told_at + timedelta(minutes=2)) == {}
        assert walk(factory, told_at + timedelta(minutes=2)) == {}
        [call] = gateway.calls
        assert (
            call["intent"] == "EXTERNAL_campaign"
            and call["entities"]["campaign_text"] == update.payload["campaign_text"]
        )
        [sent] = case_updates(factory)
        assert sent.status is DeliveryStatus.SENT and sent.sent_at is not None and sent.sent_at < promised

        # the new promise passes too: priority up again, the lead is told again, the customer
        # has had the round's one update
        new_promise = promised + timedelta(hours=2)
        assert walk(factory, new_promise - timedelta(minutes=1)) == {}
        assert walk(factory, new_promise) == {"breached": 1}
        assert walk(factory, new_promise + timedelta(hours=5)) == {}
        assert send(factory, gateway, new_promise + timedelta(hours=5)) == {}
        assert len(gateway.calls) == 1
    with factory() as session:
        assert session.get_one(Complaint, ids["case"]).priority == 2
    assert "missed even its new promise" in notices_of(factory, ids["lead"])[-1]
    assert len(notices_of(factory, ids["lead"])) == 3


def test_a_restart_between_queueing_and_sending_sends_once(
    factory: sessionmaker[Session], crm_url: str
) -> None:
    ids = file_case(factory)
    told_at = T0 + timedelta(hours=3, minutes=40)
    assert walk(factory, told_at) == {"at_risk": 1, "late": 1}
    factory.kw["bind"].dispose()  # the scheduler dies after the walk's commit, before its sender ran

    engine = make_engine(crm_url)  # a new process: new engine, new sender
    restarted = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        assert walk(restarted, told_at + timedelta(minutes=1)) == {}
        with StandInGateway() as gateway:
            assert send(restarted, gateway, told_at + timedelta(minutes=1)) == {"sent": 1}
            assert walk(restarted, told_at + timedelta(minutes=2)) == {}
            assert send(restarted, gateway, told_at + timedelta(minutes=2)) == {}
            assert [c["idempotency_key"] for c in gateway.calls] == [
                f"case_update:complaint:{ids['case']}:late:0"
            ]
        with restarted() as session:
            assert session.scalar(select(func.count(CaseAlert.id))) == 2
            assert session.scalar(select(func.count(Notice.id))) == 3  # team of two at risk; the lead late
    finally:
        engine.dispose()


def test_a_step_that_fails_midway_leaves_nothing_and_is_taken_once_later(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = file_case(factory)
    told_at = T0 + timedelta(hours=3, minutes=40)
    assert walk(factory, T0 + timedelta(hours=3)) == {"at_risk": 1}

    def crash(**_: object) -> None:
        raise RuntimeError("killed while queueing")

    monkeypatch.setattr(sla, "queue_case_update", crash)
    with pytest.raises(RuntimeError):
        walk(factory, told_at)
    with factory() as session:
        complaint = session.get_one(Complaint, ids["case"])
        assert (complaint.sla_due_at, complaint.priority) == (T0 + timedelta(hours=4), 0)
        assert session.scalars(select(CaseAlert.state)).all() == ["at_risk"]
        assert (
            session.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.kind == CaseEventKind.PROMISE))
            == 0
        )
    assert len(notices_of(factory, ids["lead"])) == 1
    monkeypatch.undo()

    assert walk(factory, told_at + timedelta(minutes=1)) == {"late": 1}
    assert walk(factory, told_at + timedelta(minutes=2)) == {}
    assert len(case_updates(factory)) == 1


def test_an_update_that_quiet_hours_would_hold_past_the_promise_goes_before_they_begin(
    factory: sessionmaker[Session],
) -> None:
    # Filed at 19:30 in Tokyo: promised by 23:30, when the customer's quiet hours (21:00-09:00)
    # would hold an update made at 90 % (23:06) until the morning. It goes at 20:45 instead.
    filed_at = datetime(2026, 6, 15, 10, 30, tzinfo=timezone.utc)
    file_case(factory, zone="Asia/Tokyo", at=filed_at)
    before_quiet = datetime(2026, 6, 15, 11, 45, tzinfo=timezone.utc)  # 20:45 in Tokyo
    assert walk(factory, before_quiet - timedelta(minutes=1)) == {}
    assert walk(factory, before_quiet) == {"late": 1}
    with StandInGateway() as gateway:
        assert send(factory, gateway, before_quiet) == {"sent": 1}
    [update] = case_updates(factory)
    assert update.sent_at is not None and update.sent_at < filed_at + timedelta(hours=4)
    assert (
        "we said you would hear back by 23:30 (Asia/Tokyo time); we need until Tue 16 Jun, 01:30"
        in (update.payload["campaign_text"])
    )


def test_a_promise_found_long_passed_is_escalated_without_a_late_update(
    factory: sessionmaker[Session],
) -> None:
    ids = file_case(factory)
    promised = T0 + timedelta(hours=4)
    # the scheduler was down from before the update until well after the promise
    assert walk(factory, promised + timedelta(hours=3)) == {"at_risk": 1, "breached": 1}
    assert case_updates(factory) == []
    assert "missed its promise, and the customer was not told in time" in notices_of(factory, ids["lead"])[-1]
    with factory() as session:
        assert session.get_one(Complaint, ids["case"]).sla_due_at == promised  # nothing promised anew
    assert walk(factory, promised + timedelta(hours=4)) == {}


def test_an_owned_case_warns_its_owner_only_and_a_resolved_one_nobody(factory: sessionmaker[Session]) -> None:
    ids = file_case(factory)
    with factory.begin() as session:
        viewer = cases.viewer_of(session=session, agent_id=ids["agent"], role=Role.AGENT)
        cases.take(session=session, viewer=viewer, complaint_id=ids["case"], version=None, now=T0)
    assert walk(factory, T0 + timedelta(hours=3)) == {"at_risk": 1}
    [text] = notices_of(factory, ids["agent"])
    assert "you own it" in text
    assert notices_of(factory, ids["lead"]) == []
    with factory.begin() as session:
        viewer = cases.viewer_of(session=session, agent_id=ids["agent"], role=Role.AGENT)
        cases.resolve(
            session=session,
            viewer=viewer,
            complaint_id=ids["case"],
            resolution=cases.Resolution("We found your parcel and sent it on.", "none"),
            version=None,
            now=T0 + timedelta(hours=3, minutes=10),
        )
    assert walk(factory, T0 + timedelta(hours=5)) == {}
    with factory() as session:
        assert session.get_one(Complaint, ids["case"]).priority == 0
        keys = session.scalars(
            select(Delivery.idempotency_key).where(Delivery.kind == OutreachKind.CASE_UPDATE)
        )
        assert [k.split(":")[3] for k in keys] == ["resolved"]  # no honest update for a resolved case


def test_the_demos_first_walk_leaves_notices_for_its_logins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.crm.demo import load_demo_data

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    today = datetime(2026, 11, 23, tzinfo=timezone.utc).date()
    with factory.begin() as session:
        load_demo_data(session=session, today=today, customers=80)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # the demo's "now"
    try:
        steps = walk(factory, now)
        # the case desk's breached cases already had their honest update, and the older demo cases
        # are long past their promise: the leads hear of them, none of those customers is written
        # to; the cases at risk warn their owners or teams
        assert steps["breached"] >= 2 and steps["at_risk"] >= 3
        assert walk(factory, now) == {}
        with factory() as session:
            logins = {a.username: a.id for a in session.scalars(select(Agent))}
            texts = {
                name: [n.text for n in notices.notices_of(session=session, agent_id=logins[name])]
                for name in ("lead", "agent", "agent2")
            }
            breached = session.scalars(
                select(CaseAlert.complaint_id).where(CaseAlert.state == "breached")
            ).all()
            late = session.scalars(
                select(Delivery.status).where(
                    Delivery.complaint_id.in_(breached), Delivery.idempotency_key.like("case_update:%:late:%")
                )
            ).all()
        assert any("missed even its new promise" in t for t in texts["lead"] + texts["agent2"])
        assert all(texts[name] for name in ("lead", "agent", "agent2")), texts
        assert late == [DeliveryStatus.SENT, DeliveryStatus.SENT]  # the demo's earlier updates, none new
    finally:
        engine.dispose()
