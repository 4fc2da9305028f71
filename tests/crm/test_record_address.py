"""The postal address on the customer's record beside a chat or a case, with its changes from the
audit log (who changed it, when, what it was before), on SQLite and PostgreSQL; and the demo
customers' addresses: complete, in the country of their time zone, read back by the chat's parser."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.api.schemas import AddressIn, CustomerIn
from bot.crm import addresses, ingest
from bot.crm.db import make_engine
from bot.crm.demo import PERSONAS, load_demo_data
from bot.crm.demo_addresses import BY_ZONE, demo_address
from bot.crm.migrate import upgrade
from bot.crm.models import AuditLog, Customer
from bot.crm.record import customer_record

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)
LEEDS = {"line1": "14 Park Lane", "postal_code": "LS1 4DY", "city": "Leeds", "country": "GB"}


def shop_sends(session: Session, *, at: datetime, **fields: object) -> Customer:
    data = CustomerIn.model_validate({"external_id": "cus_addr", "occurred_at": at.isoformat(), **fields})
    ingest.upsert_customer(session=session, data=data, actor="api:shopify")
    session.flush()
    customer = session.scalars(select(Customer).where(Customer.external_id == "cus_addr")).one()
    return customer


def test_the_record_shows_the_address_and_every_change_newest_first(session: Session) -> None:
    customer = shop_sends(session, at=T0, first_name="Ann", last_name="Lee", address=LEEDS)
    moved = addresses.parse_address("my new address is Hauptstraße 12, 10115 Berlin, Germany")
    addresses.change_address(session=session, customer=customer, address=moved, source="web", now=T0)
    shop_sends(session, at=T0 + timedelta(days=1), email="ann@example.com")  # not an address change
    session.flush()

    record = customer_record(session=session, customer_id=customer.id)

    assert ("Address", "Hauptstraße 12, 10115 Berlin, Germany") in record.profile
    assert [(row.title, row.detail) for row in record.address_history] == [
        (
            "Changed by the customer in chat on the website",
            "before: 14 Park Lane, Leeds LS1 4DY, United Kingdom",
        ),
        ("Set by the shop (api:shopify)", "when it sent us the account"),
    ]

    shop_sends(session, at=T0 + timedelta(days=2), address={**LEEDS, "line1": "15 Park Lane"})
    latest = customer_record(session=session, customer_id=customer.id)
    assert ("Address", "15 Park Lane, Leeds LS1 4DY, United Kingdom") in latest.profile
    assert (latest.address_history[0].title, latest.address_history[0].detail) == (
        "Changed by the shop (api:shopify)",
        "previous address not recorded here",
    )
    assert len(latest.address_history) == 3


def test_a_customer_without_an_address_has_no_address_line_and_no_history(session: Session) -> None:
    customer = shop_sends(session, at=T0, first_name="No", last_name="Where")
    record = customer_record(session=session, customer_id=customer.id)
    assert [name for name, _ in record.profile if name == "Address"] == []
    assert record.address_history == []


def test_an_odd_old_address_in_the_audit_log_is_shown_as_stored(session: Session) -> None:
    customer = shop_sends(session, at=T0, first_name="Odd", last_name="Old", address=LEEDS)
    session.add(
        AuditLog(
            actor="customer",
            action="address_changed",
            entity="customer",
            entity_id=customer.id,
            details={"source": "telegram", "old": {"line1": "1 Main St", "city": "Mumbai"}},
        )
    )
    session.flush()
    row = customer_record(session=session, customer_id=customer.id).address_history[0]
    assert (row.title, row.detail) == (
        "Changed by the customer in chat on Telegram",
        "before: 1 Main St, Mumbai",
    )


def test_every_demo_zone_makes_addresses_the_api_and_the_chat_both_accept() -> None:
    rng = random.Random(7)
    for zone in BY_ZONE:
        for _ in range(40):
            address = demo_address(rng, zone)
            assert address is not None
            AddressIn.model_validate(address.as_dict())  # the inbound API's check
            assert addresses.parse_address(address.one_line()) == address  # read back as the chat reads it


def test_demo_customers_live_where_their_time_zone_is_and_some_moved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    with Session(make_engine(url)) as session:
        load_demo_data(session=session, today=date(2026, 11, 23), customers=80)
        session.commit()
        customers = list(session.scalars(select(Customer).order_by(Customer.id)))
        countries = {c.country.value for c in customers if c.country}
        assert len(countries) >= 5
        for customer in customers:
            address = addresses.address_of(customer)
            if customer.timezone == "Asia/Kolkata":
                assert address is None and customer.address_line1 is None
                continue
            assert address is not None, customer.id
            assert addresses.parse_address(address.one_line()) == address
        daniel = customers[3]
        assert (daniel.first_name, daniel.last_name) == PERSONAS[3][:2]
        record = customer_record(session=session, customer_id=daniel.id)
        assert [row.title for row in record.address_history] == [
            "Changed by the customer in chat on the website"
        ]
        assert "United Kingdom" in record.address_history[0].detail  # he moved within the UK
        moved = session.scalars(select(AuditLog).where(AuditLog.action == "address_changed")).all()
        assert 2 <= len(moved) <= 20
        for entry in moved:
            now = addresses.address_of(session.get_one(Customer, entry.entity_id))
            assert now is not None and entry.details["old"] != now.as_dict()
