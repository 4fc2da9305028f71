"""bot.crm.transcript on SQLite and PostgreSQL: the transcript, the inbox, and reachability."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import reachability, transcript
from bot.crm.models import (
    AuditLog,
    Author,
    Channel,
    ChannelIdentity,
    Customer,
    Direction,
    InboundStatus,
    Message,
    OutboundStatus,
    utcnow,
)
from bot.crm.transcript import Profile
from bot.gateway import inbox_crm
from tests.factories import NOW, make_customer


def test_first_message_creates_customer_identity_conversation_and_a_received_line(session: Session) -> None:
    stored = transcript.store_inbound(
        session=session,
        sender_id="telegram:9001",
        text="hello",
        external_id="55",
        profile=Profile("Ada", "Lovelace", "de"),
        now=NOW,
    )

    assert stored.duplicate is False
    message = stored.message
    assert (message.direction, message.author, message.text, message.delivery_status) == (
        Direction.INBOUND,
        Author.CUSTOMER,
        "hello",
        InboundStatus.RECEIVED,
    )
    customer = stored.customer
    assert (customer.first_name, customer.last_name, customer.language) == ("Ada", "Lovelace", "de")
    assert customer.last_contact_at == NOW and stored.conversation.last_message_at == NOW
    identity = customer.identities[0]
    assert (identity.channel, identity.external_id, identity.display_name) == (
        Channel.TELEGRAM,
        "9001",
        "Ada Lovelace",
    )


def test_a_redelivered_message_is_not_stored_twice(session: Session) -> None:
    first = transcript.store_inbound(session=session, sender_id="web:dup", text="once", external_id="c-1")
    again = transcript.store_inbound(session=session, sender_id="web:dup", text="once", external_id="c-1")
    assert again.duplicate is True and again.message.id == first.message.id
    count = session.scalars(select(Message).where(Message.conversation_id == first.conversation.id)).all()
    assert len(count) == 1


def test_a_known_customer_keeps_crm_names_and_gets_channel_updates(session: Session) -> None:
    customer = make_customer(session, first_name="Anna", last_name="Berger")
    session.add(
        ChannelIdentity(
            customer_id=customer.id,
            channel=Channel.TELEGRAM,
            external_id="77",
            reachable=False,
            unreachable_reason="x",
        )
    )
    customer.reachable = False
    session.flush()

    stored = transcript.store_inbound(
        session=session, sender_id="telegram:77", text="I unblocked you", profile=Profile("Annie", None, "fr")
    )

    assert stored.customer.id == customer.id
    assert (customer.first_name, customer.last_name) == ("Anna", "Berger")
    identity = stored.customer.identities[0]
    assert (identity.display_name, identity.language, identity.reachable) == ("Annie", "fr", True)
    assert customer.reachable is True and identity.last_seen_at is not None


def test_the_inbox_lists_unanswered_messages_in_order(session: Session) -> None:
    a1 = transcript.store_inbound(session=session, sender_id="web:a", text="a1").message
    b1 = transcript.store_inbound(session=session, sender_id="web:b", text="b1").message
    a2 = transcript.store_inbound(session=session, sender_id="web:a", text="a2").message
    transcript.mark_processed(session=session, message_id=b1.id)
    session.flush()

    assert transcript.conversations_with_pending(session=session) == [a1.conversation_id]
    assert [
        m.id for m in transcript.pending_inbound(session=session, conversation_id=a1.conversation_id)
    ] == [
        a1.id,
        a2.id,
    ]
    inbox_crm.begin_try(session, message_id=a1.id)
    inbox_crm.record_failed_try(session, message_id=a1.id, error="Rasa is unreachable" * 50)
    assert (a1.attempts, len(a1.error or ""), a1.delivery_status) == (1, 300, InboundStatus.RECEIVED)
    inbox_crm.record_failed_try(session, message_id=a2.id, error="refused", give_up=True)
    assert a2.delivery_status == InboundStatus.FAILED


def test_one_holding_answer_per_wait(session: Session) -> None:
    first = transcript.store_inbound(session=session, sender_id="web:h", text="one").message
    conversation_id = first.conversation_id
    assert (
        transcript.holding_sent_since_oldest_pending(session=session, conversation_id=conversation_id)
        is False
    )
    transcript.store_outbound(
        session=session,
        conversation_id=conversation_id,
        author=Author.SYSTEM,
        text="holding",
        payload={"kind": transcript.HOLDING},
    )
    transcript.store_inbound(session=session, sender_id="web:h", text="two")
    assert (
        transcript.holding_sent_since_oldest_pending(session=session, conversation_id=conversation_id) is True
    )
    for message in transcript.pending_inbound(session=session, conversation_id=conversation_id):
        transcript.mark_processed(session=session, message_id=message.id)
    session.flush()
    transcript.store_inbound(session=session, sender_id="web:h", text="three, after an answer")
    session.flush()
    assert (
        transcript.holding_sent_since_oldest_pending(session=session, conversation_id=conversation_id)
        is False
    )


def test_delivery_status_moves_forward_and_receipts_are_kept(session: Session) -> None:
    conversation_id = transcript.store_inbound(session=session, sender_id="web:d", text="hi").conversation.id
    out = transcript.store_outbound(
        session=session, conversation_id=conversation_id, author=Author.BOT, text="yo"
    )
    assert out.delivery_status == OutboundStatus.QUEUED
    assert [
        m.id for m in transcript.undelivered_outbound(session=session, conversation_id=conversation_id)
    ] == [out.id]

    assert (
        transcript.mark_delivered(session=session, conversation_id=conversation_id, message_ids=[out.id]) == 1
    )
    session.refresh(out)
    transcript.record_delivery(
        session=session, message_id=out.id, status=OutboundStatus.SENT, external_id="m1"
    )

    assert out.delivery_status == OutboundStatus.DELIVERED  # a late "sent" does not undo the receipt
    assert (out.external_id, out.attempts) == ("m1", 1) and out.sent_at is not None
    assert (
        transcript.mark_delivered(
            session=session, conversation_id=conversation_id + 999, message_ids=[out.id]
        )
        == 0
    )


def test_failed_deliveries_are_retried_only_while_attempts_remain(session: Session) -> None:
    conversation_id = transcript.store_inbound(
        session=session, sender_id="telegram:5", text="hi"
    ).conversation.id
    old = transcript.store_outbound(
        session=session, conversation_id=conversation_id, author=Author.BOT, text="a", now=NOW
    )
    used_up = transcript.store_outbound(
        session=session, conversation_id=conversation_id, author=Author.BOT, text="b", now=NOW
    )
    used_up.attempts = 5
    fresh = transcript.store_outbound(
        session=session, conversation_id=conversation_id, author=Author.BOT, text="c"
    )
    session.flush()

    retry = transcript.retryable_outbound(
        session=session, channel=Channel.TELEGRAM, before=utcnow() - timedelta(seconds=30), max_attempts=5
    )
    assert [m.id for m in retry] == [old.id]
    assert fresh.id not in [m.id for m in retry]
    assert (
        transcript.retryable_outbound(session=session, channel=Channel.WEB, before=utcnow(), max_attempts=5)
        == []
    )


def test_a_blocked_identity_makes_the_customer_unreachable_only_if_it_was_the_last(session: Session) -> None:
    customer = make_customer(session, web_id="w-1")
    session.add(ChannelIdentity(customer_id=customer.id, channel=Channel.TELEGRAM, external_id="101"))
    session.flush()
    session.refresh(customer)

    reachability.mark_unreachable(
        session=session, sender_id="telegram:101", reason="Forbidden: bot was blocked by the user"
    )
    assert customer.reachable is True
    reachability.mark_unreachable(session=session, sender_id="web:w-1", reason="gone")
    assert customer.reachable is False
    identity = reachability.best_identity(
        session=session, customer_id=customer.id, channels=[Channel.TELEGRAM]
    )
    assert identity is None
    blocked = session.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == "101"))
    assert blocked is not None and blocked.unreachable_reason == "Forbidden: bot was blocked by the user"
    audit = session.scalars(select(AuditLog.action).where(AuditLog.entity == "channel_identity")).all()
    assert audit == ["identity_unreachable", "identity_unreachable"]


def test_linking_moves_a_chat_and_its_conversation_to_the_known_customer(session: Session) -> None:
    anna = make_customer(session, first_name="Anna")
    stranger = transcript.store_inbound(session=session, sender_id="telegram:300", text="/start").customer
    assert stranger.id != anna.id

    transcript.link_identity(session=session, sender_id="telegram:300", customer_id=anna.id)
    transcript.link_identity(session=session, sender_id="telegram:301", customer_id=anna.id)  # new chat
    session.flush()

    conversation = transcript.find_conversation(session=session, sender_id="telegram:300")
    assert conversation is not None and conversation.customer_id == anna.id
    session.refresh(anna)
    assert sorted(i.external_id for i in anna.identities) == ["300", "301"]


def test_a_button_counts_only_in_the_conversation_that_offered_it(session: Session) -> None:
    conversation_id = transcript.store_inbound(
        session=session, sender_id="web:btn", text="hi"
    ).conversation.id
    menu = transcript.store_outbound(
        session=session,
        conversation_id=conversation_id,
        author=Author.BOT,
        text="Choose",
        payload={"buttons": [{"title": "Track", "payload": "/check_order_status"}]},
    )
    button = transcript.offered_button(
        session=session, conversation_id=conversation_id, message_id=menu.id, index=0
    )
    assert button == {"title": "Track", "payload": "/check_order_status"}
    assert (
        transcript.offered_button(
            session=session, conversation_id=conversation_id, message_id=menu.id, index=1
        )
        is None
    )
    assert transcript.offered_button(session=session, conversation_id=-1, message_id=menu.id, index=0) is None


def test_a_proactive_request_is_remembered_by_its_key(session: Session) -> None:
    customer = make_customer(session)
    transcript.record_proactive(
        session=session,
        customer_id=customer.id,
        conversation_id=1,
        intent="EXTERNAL_checkin",
        idempotency_key="k-1",
        message_ids=[10, 11],
    )
    session.flush()
    found = transcript.proactive_result(session=session, customer_id=customer.id, idempotency_key="k-1")
    assert found is not None and found["message_ids"] == [10, 11]
    assert (
        transcript.proactive_result(session=session, customer_id=customer.id, idempotency_key="k-2") is None
    )
    other = session.get(Customer, customer.id + 1000)
    assert other is None
    assert (
        transcript.proactive_result(session=session, customer_id=customer.id + 1000, idempotency_key="k-1")
        is None
    )
