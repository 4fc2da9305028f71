"""The demo population: realistic, complete and deterministic."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.demo import DEMO_LOGINS, PERSONAS, load_demo_data, web_external_id
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Agent,
    Complaint,
    Consent,
    ConsentPurpose,
    Customer,
    Offer,
    Order,
    Product,
    Refund,
    Segment,
    Temperament,
)
from bot.crm.passwords import verify_password
from bot.crm.queries import find_customer

TODAY = date(2026, 11, 23)


def _load(path: Path) -> Session:
    url = f"sqlite:///{path}"
    upgrade(url)
    session = Session(make_engine(url))
    load_demo_data(session=session, today=TODAY)
    session.commit()
    return session


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return _load(tmp_path_factory.mktemp("demo") / "crm.db")


def _digest(session: Session) -> str:
    rows = session.execute(
        select(
            Customer.first_name, Customer.last_name, Customer.segment, Customer.birthday, Customer.timezone
        ).order_by(Customer.id)
    ).all()
    rows += session.execute(select(Order.number, Order.total, Order.placed_at).order_by(Order.id)).all()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_population_is_about_500_customers_with_history(demo: Session) -> None:
    assert demo.scalar(select(func.count(Customer.id))) == 500
    orders = demo.scalar(select(func.count(Order.id)))
    assert orders is not None and orders > 2000
    first, last = demo.execute(select(func.min(Order.placed_at), func.max(Order.placed_at))).one()
    assert (last - first) > timedelta(days=450)  # spread over about 18 months
    assert demo.scalar(select(func.count(Complaint.id))) > 100
    assert demo.scalar(select(func.count(Refund.id))) > 20
    assert demo.scalar(select(func.count(Product.id))) >= 20
    assert demo.scalar(select(func.count(Offer.id))) >= 10


def test_every_segment_and_temperament_is_represented(demo: Session) -> None:
    segments = Counter(demo.scalars(select(Customer.segment)))
    assert set(segments) == set(Segment)
    assert 0.15 <= segments[Segment.MVC] / 500 <= 0.25  # the top ~20%
    temperaments = set(demo.scalars(select(Customer.temperament)))
    assert temperaments >= set(Temperament) - {Temperament.UNKNOWN}


def test_consent_time_zones_and_birthdays_vary(demo: Session) -> None:
    opted_out = demo.scalar(
        select(func.count(Consent.id)).where(
            Consent.purpose == ConsentPurpose.MARKETING, Consent.granted.is_(False)
        )
    )
    assert opted_out is not None and 40 <= opted_out <= 200
    assert len(set(demo.scalars(select(Customer.timezone)))) >= 5
    assert demo.scalar(select(func.count(Customer.id)).where(Customer.birthday.is_(None))) == 0


def test_personas_are_reachable_by_their_demo_ids(demo: Session) -> None:
    for number, persona in enumerate(PERSONAS, start=1):
        customer = find_customer(session=demo, sender_id=f"web:{web_external_id(number)}")
        assert customer is not None and customer.first_name == persona[0]
    anna = find_customer(session=demo, sender_id="web:demo-0001")
    ben = find_customer(session=demo, sender_id="telegram:700000002")
    assert anna is not None and anna.segment is Segment.MVC
    assert ben is not None and ben.segment is Segment.BZ and ben.temperament is Temperament.IRRITABLE


def test_demo_logins_work(demo: Session) -> None:
    for username, _, role, password in DEMO_LOGINS:
        agent = demo.scalars(select(Agent).where(Agent.username == username)).one()
        assert agent.role is role
        assert verify_password(agent.password_hash, password)
        assert not verify_password(agent.password_hash, password + "x")


def test_same_day_same_data(demo: Session, tmp_path: Path) -> None:
    assert _digest(_load(tmp_path / "again.db")) == _digest(demo)


def test_refuses_a_crm_that_already_has_customers(demo: Session) -> None:
    with pytest.raises(RuntimeError, match="empty CRM only"):
        load_demo_data(session=demo, today=TODAY)


@pytest.mark.postgres
def test_demo_data_loads_on_postgresql(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        counts = load_demo_data(session=session, today=TODAY, customers=120)
        assert sum(counts.values()) == 120 and set(counts) == set(Segment)
        session.close()
        transaction.rollback()
    engine.dispose()
