"""Shared CRM look-ups and writes."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import AuditLog, Channel, Consent, ConsentPurpose, InteractionEvent
from bot.crm.queries import (
    InvalidSenderId,
    consent_of,
    ensure_conversation,
    find_customer,
    get_or_create_customer,
    log_interaction,
    parse_sender_id,
)
from tests.factories import NOW, make_customer


@pytest.mark.parametrize(
    ("sender_id", "expected"),
    [("telegram:123456", (Channel.TELEGRAM, "123456")), ("web:3f2a-uuid", (Channel.WEB, "3f2a-uuid"))],
)
def test_sender_ids_name_channel_and_id(sender_id: str, expected: tuple[Channel, str]) -> None:
    assert parse_sender_id(sender_id) == expected


@pytest.mark.parametrize(
    "sender_id",
    ["", "telegram", "telegram:", "fax:123", "web:" + "x" * 129, "web:a\nb", "'; DROP TABLE customer;--"],
)
def test_malformed_sender_ids_are_refused(sender_id: str) -> None:
    with pytest.raises(InvalidSenderId):
        parse_sender_id(sender_id)


def test_first_contact_creates_a_customer_once_with_service_consent_only(session: Session) -> None:
    customer, created = get_or_create_customer(
        session=session, sender_id="telegram:555", first_name="Mia", language="de", now=NOW
    )
    again, created_again = get_or_create_customer(session=session, sender_id="telegram:555")
    assert (created, created_again) == (True, False)
    assert again.id == customer.id
    assert customer.first_name == "Mia" and customer.language == "de"
    assert consent_of(session=session, customer_id=customer.id, purpose=ConsentPurpose.SERVICE) is True
    assert consent_of(session=session, customer_id=customer.id, purpose=ConsentPurpose.MARKETING) is False
    consent_sources = session.scalars(select(Consent.source).where(Consent.customer_id == customer.id)).all()
    assert set(consent_sources) == {"telegram:first_contact"}
    audit = session.scalars(select(AuditLog).where(AuditLog.entity_id == customer.id)).one()
    assert (audit.actor, audit.action, audit.entity) == ("bot", "customer_created", "customer")


def test_known_sender_is_found_and_a_stranger_is_not(session: Session) -> None:
    customer = make_customer(session, web_id="visitor-7")
    found = find_customer(session=session, sender_id="web:visitor-7")
    assert found is not None and found.id == customer.id
    assert find_customer(session=session, sender_id="web:nobody") is None


def test_logging_an_interaction_touches_last_contact(session: Session) -> None:
    customer = make_customer(session, web_id="visitor-8")
    conversation = ensure_conversation(session=session, sender_id="web:visitor-8", customer=customer)
    assert (
        ensure_conversation(session=session, sender_id="web:visitor-8", customer=customer).id
        == conversation.id
    )
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="greet",
        intent="greet",
        confidence=0.97,
        data={"new_customer": False},
        now=NOW,
    )
    event = session.scalars(select(InteractionEvent).where(InteractionEvent.customer_id == customer.id)).one()
    assert (event.kind, event.intent, event.confidence, event.data) == (
        "greet",
        "greet",
        0.97,
        {"new_customer": False},
    )
    assert customer.last_contact_at == NOW and conversation.last_message_at == NOW
