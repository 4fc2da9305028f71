"""A customer's data: exported whole, erased without losing what the business must keep."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import transcript
from bot.crm.complaints import file_complaint
from bot.crm.models import (
    AuditLog,
    ChannelIdentity,
    ComplaintCategory,
    Conversation,
    Customer,
    Message,
    Order,
    Survey,
)
from bot.crm.privacy import UnknownCustomer, conversations_of, erase_customer, export_customer
from bot.crm.surveys import record_comment, record_rating
from tests.factories import make_order


def a_customer_with_history(session: Session) -> tuple[Customer, Conversation]:
    stored = transcript.store_inbound(
        session=session, sender_id="web:privacy-ida", text="my mug <b>broke</b>, I'm Ida Lund"
    )
    customer = stored.customer
    customer.first_name, customer.email, customer.phone = "Ida", "ida@example.org", "+4915112345678"
    customer.tags = ["vip-event"]
    make_order(session, customer)
    file_complaint(
        session=session,
        customer=customer,
        conversation=stored.conversation,
        category=ComplaintCategory.PRODUCT_QUALITY,
        description="The mug Ida Lund bought cracked",
        order=None,
        angry=False,
    )
    record_rating(session=session, customer=customer, score=4, conversation=stored.conversation)
    record_comment(
        session=session, customer=customer, comment="Ida says: nice people", conversation=stored.conversation
    )
    session.flush()
    return customer, stored.conversation


def test_the_export_holds_every_table_of_the_customer(session: Session) -> None:
    customer, _ = a_customer_with_history(session)
    export = export_customer(session=session, customer_id=customer.id)
    json.dumps(export)  # JSON-ready as it is
    assert export["customer"]["email"] == "ida@example.org"
    assert {"channel_identity", "conversation", "message", "complaint", "survey", "order"} <= set(export)
    assert export["message"][0]["text"] == "my mug <b>broke</b>, I'm Ida Lund"
    assert export["complaint"][0]["description"] == "The mug Ida Lund bought cracked"
    session.rollback()


def test_erasure_removes_what_identifies_and_keeps_the_books(session: Session) -> None:
    customer, conversation = a_customer_with_history(session)
    assert conversations_of(session=session, customer_id=customer.id) == ["web:privacy-ida"]
    old_senders = erase_customer(session=session, customer_id=customer.id, actor="agent:1")
    assert old_senders == ["web:privacy-ida"]
    session.expire_all()
    erased = session.get_one(Customer, customer.id)
    assert (erased.first_name, erased.email, erased.phone, erased.tags) == (None, None, None, [])
    assert erased.erased_at is not None and not erased.reachable
    assert (
        session.scalars(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer.id)).all() == []
    )
    assert session.get_one(Conversation, conversation.id).sender_id == f"erased:{conversation.id}"
    messages = session.scalars(select(Message).where(Message.conversation_id == conversation.id)).all()
    assert messages and all(m.text is None and m.payload is None for m in messages)
    everything = json.dumps(export_customer(session=session, customer_id=customer.id))
    for personal in ("Ida", "ida@example.org", "4915112345678", "privacy-ida", "broke", "nice people"):
        assert personal not in everything
    assert session.scalars(select(Order).where(Order.customer_id == customer.id)).one().total > 0
    assert session.scalars(select(Survey).where(Survey.customer_id == customer.id)).one().score == 4
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "customer_erased")).one()
    assert (audit.actor, audit.entity_id) == ("agent:1", customer.id)
    # The same chat writing again is a new customer, not the erased one.
    again = transcript.store_inbound(session=session, sender_id="web:privacy-ida", text="hello again")
    assert again.conversation.customer_id != customer.id
    session.rollback()


def test_an_unknown_customer_is_refused(session: Session) -> None:
    with pytest.raises(UnknownCustomer):
        export_customer(session=session, customer_id=999_999)
    with pytest.raises(UnknownCustomer):
        erase_customer(session=session, customer_id=999_999, actor="cli")
