"""Issue 22: inbound messages, outbound messages and scheduled deliveries each have their own states."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.crm import transcript
from bot.crm.handoffs import REASON_WEIGHT
from bot.crm.labels import label
from bot.crm.models import (
    Author,
    Delivery,
    DeliveryStatus,
    HandoffReason,
    InboundStatus,
    Message,
    OutboundStatus,
    OutreachKind,
)
from bot.gateway import inbox_crm
from tests.factories import NOW, make_customer

LIFECYCLES = (InboundStatus, OutboundStatus, DeliveryStatus)


def test_a_lifecycle_has_only_its_own_states() -> None:
    assert {s.value for s in InboundStatus} == {"received", "processed", "failed"}
    assert {s.value for s in OutboundStatus} == {"queued", "sent", "delivered", "failed", "skipped"}
    assert {s.value for s in DeliveryStatus} == {"queued", "sending", "sent", "failed", "skipped"}


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda c: c.__name__)
def test_every_state_reads_in_words_the_console_shows(lifecycle: type[DeliveryStatus]) -> None:
    for state in lifecycle:
        assert label(state) == state.label and state.label.strip()
        assert label(state.value, lifecycle.__name__) == state.label


def test_a_message_reads_back_in_its_own_lifecycle(session: Session) -> None:
    inbound = transcript.store_inbound(session=session, sender_id="web:life", text="hi", now=NOW).message
    outbound = transcript.store_outbound(
        session=session, conversation_id=inbound.conversation_id, author=Author.BOT, text="hello"
    )
    inbox_crm.record_failed_try(session, message_id=inbound.id, error="x", give_up=True)
    session.flush()
    session.expire_all()

    assert session.get_one(Message, inbound.id).delivery_status is InboundStatus.FAILED
    assert session.get_one(Message, outbound.id).delivery_status is OutboundStatus.QUEUED
    # In SQL the column is compared and updated by its stored value.
    queued = select(Message.id).where(Message.delivery_status == OutboundStatus.QUEUED)
    assert session.scalars(queued).all() == [outbound.id]
    session.execute(
        update(Message).where(Message.id == outbound.id).values(delivery_status=OutboundStatus.DELIVERED)
    )
    session.expire_all()
    assert session.get_one(Message, outbound.id).delivery_status is OutboundStatus.DELIVERED


def test_a_message_refuses_a_state_of_no_message_lifecycle() -> None:
    message, sending = Message(), DeliveryStatus.SENDING
    with pytest.raises(ValueError, match="not a message state"):
        message.delivery_status = cast(OutboundStatus, sending)


def test_a_delivery_reads_back_as_a_delivery_state(session: Session) -> None:
    customer = make_customer(session)
    delivery = Delivery(
        idempotency_key="life:1",
        kind=OutreachKind.SILENCE,
        customer_id=customer.id,
        status=DeliveryStatus.SENDING,
    )
    session.add(delivery)
    session.flush()
    session.expire_all()
    assert session.get_one(Delivery, delivery.id).status is DeliveryStatus.SENDING


def test_every_reason_a_conversation_goes_to_a_person_for_reads_in_words() -> None:
    # refund_review and other (orders and the handoff action) used to show as bare codes.
    assert label("refund_review", "handoff_reason") == "a refund to review"
    assert label("other", "handoff_reason") == "another reason"
    assert all(label(r.value, "handoff_reason") == r.label for r in HandoffReason)
    assert set(REASON_WEIGHT) <= {r.value for r in HandoffReason}
