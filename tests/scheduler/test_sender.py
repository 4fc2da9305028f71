"""The sender: exactly once per key, through the gate, with retries, holds and waits."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
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
    ComplaintStatus,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OutreachKind,
)
from scheduler.checkins import enqueue
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.factories import make_complaint, make_order
from tests.scheduler.standin_gateway import StandInGateway

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
ALWAYS_OPEN = Policy.parse("00:00-00:00", weekly_cap=3)


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    return sessionmaker(bind=make_engine(url), expire_on_commit=False)


def customers(factory: sessionmaker[Session], count: int, *, marketing: bool = True) -> list[int]:
    ids = []
    with factory.begin() as session:
        for n in range(count):
            customer = Customer(first_name=f"C{n}", timezone="Europe/Berlin")
            customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=f"s-{n}-{marketing}"))
            session.add(customer)
            session.flush()
            set_consent(
                session=session,
                customer=customer,
                purpose=ConsentPurpose.MARKETING,
                granted=marketing,
                source="test",
                now=NOW - timedelta(days=1),
            )
            ids.append(customer.id)
    return ids


def queue(
    factory: sessionmaker[Session], ids: list[int], kind: OutreachKind = OutreachKind.SILENCE, **extra
) -> None:  # type: ignore[no-untyped-def]
    with factory.begin() as session:
        for cid in ids:
            enqueue(
                session=session,
                key=f"{kind.value}:{cid}",
                kind=kind,
                customer_id=cid,
                scheduled_for=NOW - timedelta(minutes=1),
                **extra,
            )


def sender(factory: sessionmaker[Session], gateway: StandInGateway) -> Sender:
    return Sender(
        factory, HttpGateway(gateway.url, gateway.token), ALWAYS_OPEN, clock=lambda: NOW, rate_per_second=0
    )


def statuses(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        rows = session.scalars(select(Delivery)).all()
        result: dict[str, int] = {}
        for d in rows:
            label = d.skip_reason or d.status.value
            result[label] = result.get(label, 0) + 1
        return result


def test_two_senders_racing_deliver_each_message_once(factory: sessionmaker[Session]) -> None:
    ids = customers(factory, 60)
    queue(factory, ids)
    with StandInGateway() as gateway:
        first, second = sender(factory, gateway), sender(factory, gateway)
        threads = [threading.Thread(target=s.run_due) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(gateway.calls) == 60  # not one call more: the claim is atomic
        assert set(gateway.per_customer().values()) == {1} and len(gateway.per_customer()) == 60
    assert statuses(factory) == {"sent": 60}


def test_gate_skips_and_gateway_outcomes_are_recorded(factory: sessionmaker[Session]) -> None:
    consented, refused = customers(factory, 2), customers(factory, 1, marketing=False)
    queue(factory, consented + refused, OutreachKind.CAMPAIGN)
    with StandInGateway() as gateway:
        gateway.unreachable.add(consented[1])
        outcomes = sender(factory, gateway).run_due()
    assert outcomes == {"sent": 1, "skipped": 2}
    assert statuses(factory) == {"sent": 1, "unreachable": 1, "no_consent": 1}


def test_gateway_down_means_retry_with_backoff_not_loss(factory: sessionmaker[Session]) -> None:
    queue(factory, customers(factory, 1))
    with StandInGateway() as gateway:
        gateway.down = True
        assert sender(factory, gateway).run_due() == {"retry": 1}
        with factory() as session:
            delivery = session.scalars(select(Delivery)).one()
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 1)
            assert delivery.scheduled_for == NOW + timedelta(minutes=2)
        gateway.down = False
        later = Sender(
            factory,
            HttpGateway(gateway.url, gateway.token),
            ALWAYS_OPEN,
            clock=lambda: NOW + timedelta(minutes=3),
            rate_per_second=0,
        )
        assert later.run_due() == {"sent": 1}


def test_paused_campaigns_wait_and_cancelled_ones_are_dropped(factory: sessionmaker[Session]) -> None:
    ids = customers(factory, 2)
    with factory.begin() as session:
        paused = Campaign(name="p", message="m", status=CampaignStatus.PAUSED)
        cancelled = Campaign(name="c", message="m", status=CampaignStatus.CANCELLED)
        session.add_all([paused, cancelled])
        session.flush()
        enqueue(
            session=session,
            key="p",
            kind=OutreachKind.CAMPAIGN,
            customer_id=ids[0],
            campaign_id=paused.id,
            scheduled_for=NOW,
        )
        enqueue(
            session=session,
            key="c",
            kind=OutreachKind.CAMPAIGN,
            customer_id=ids[1],
            campaign_id=cancelled.id,
            scheduled_for=NOW,
        )
    with StandInGateway() as gateway:
        assert sender(factory, gateway).run_due() == {"held": 1, "skipped": 1}
        assert gateway.calls == []


def test_revisit_waits_for_the_fix_and_goes_once_resolved(factory: sessionmaker[Session]) -> None:
    [cid] = customers(factory, 1)
    with factory.begin() as session:
        complaint = make_complaint(session, session.get(Customer, cid), status=ComplaintStatus.OPEN)
        complaint_id = complaint.id
    queue(
        factory,
        [cid],
        OutreachKind.COMPLAINT_FOLLOWUP,
        complaint_id=complaint_id,
        payload={"complaint_id": str(complaint_id)},
    )
    with StandInGateway() as gateway:
        assert sender(factory, gateway).run_due() == {"waiting": 1}
        with factory.begin() as session:
            session.get(type(complaint), complaint_id).status = ComplaintStatus.RESOLVED  # type: ignore[union-attr]
            session.scalars(select(Delivery)).one().scheduled_for = NOW
        assert sender(factory, gateway).run_due() == {"sent": 1}
        assert gateway.calls[0]["intent"] == "EXTERNAL_checkin"
        assert gateway.calls[0]["entities"] == {"complaint_id": str(complaint_id)}


def test_no_delivery_check_about_an_order_the_customer_has_complained_about(
    factory: sessionmaker[Session],
) -> None:
    """'Is everything alright with it?' after they told us it is not reads as if nobody listened."""
    [complained, content] = customers(factory, 2)
    with factory.begin() as session:
        orders = {}
        for cid in (complained, content):
            orders[cid] = make_order(session, session.get_one(Customer, cid), days_ago=3).number
        order_id = session.scalars(select(Order.id).where(Order.number == orders[complained])).one()
        make_complaint(
            session, session.get_one(Customer, complained), status=ComplaintStatus.OPEN, order_id=order_id
        )
        for cid in (complained, content):
            enqueue(
                session=session,
                key=f"delivery_check:{cid}",
                kind=OutreachKind.DELIVERY_CHECK,
                customer_id=cid,
                scheduled_for=NOW - timedelta(minutes=1),
                payload={"order_id": orders[cid]},
            )
    with StandInGateway() as gateway:
        assert sender(factory, gateway).run_due() == {"sent": 1, "skipped": 1}
        assert [c["entities"] for c in gateway.calls] == [{"order_id": orders[content]}]
    with factory() as session:
        skipped = session.scalars(select(Delivery).where(Delivery.customer_id == complained)).one()
    assert (skipped.status, skipped.skip_reason) == (DeliveryStatus.SKIPPED, "not_needed")
