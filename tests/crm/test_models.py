"""Model behaviour that must be identical on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from bot.crm.models import Channel, ChannelIdentity, Customer, Order, Segment
from tests.factories import make_customer, make_order


def test_timestamps_come_back_aware_and_in_utc(session: Session) -> None:
    berlin_noon = datetime(2026, 3, 29, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    customer = make_customer(session, last_contact_at=berlin_noon)
    session.expire_all()
    stored = session.get(Customer, customer.id)
    assert stored is not None and stored.last_contact_at is not None
    assert stored.last_contact_at.tzinfo == timezone.utc
    assert stored.last_contact_at == datetime(2026, 3, 29, 10, 0, tzinfo=timezone.utc)
    assert stored.created_at.tzinfo == timezone.utc


def test_naive_timestamps_are_refused(session: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        make_customer(session, last_contact_at=datetime(2026, 1, 1, 9, 0))


def test_a_channel_identity_belongs_to_one_customer_only(session: Session) -> None:
    make_customer(session, web_id="same-visitor")
    with pytest.raises(IntegrityError):
        make_customer(session, web_id="same-visitor")


def test_orders_need_an_existing_customer(session: Session) -> None:
    ghost = Customer(id=999_999)
    with pytest.raises(IntegrityError):
        make_order(session, ghost)


def test_erasing_a_customer_removes_their_identities_and_orders(session: Session) -> None:
    customer = make_customer(session, web_id="to-forget")
    make_order(session, customer)
    session.delete(customer)
    session.flush()
    assert (
        session.scalars(select(ChannelIdentity).where(ChannelIdentity.external_id == "to-forget")).all() == []
    )
    assert session.scalars(select(Order).where(Order.customer_id == customer.id)).all() == []


def test_enums_are_stored_as_their_values(session: Session) -> None:
    customer = make_customer(session, segment=Segment.MVC)
    identity = ChannelIdentity(customer_id=customer.id, channel=Channel.TELEGRAM, external_id="42")
    session.add(identity)
    session.flush()
    raw = session.connection().exec_driver_sql(
        f"SELECT segment FROM customer WHERE id = {customer.id}"  # noqa: S608 - test literal
    )
    assert raw.scalar_one() == "MVC"
    assert identity.sender_id == "telegram:42"
