"""The inbox's work in the CRM: each function here is one transaction, run on a CRM worker thread
through `Crm.run` (bot/gateway/store.py), and returns plain data, never a live ORM object."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.crm import cases, transcript
from bot.crm.models import (
    Author,
    Conversation,
    ConversationStatus,
    Customer,
    InboundStatus,
    Message,
)
from bot.gateway import wording
from bot.gateway.inbound import CASE_ANSWER, Accepted, ConversationRef, Inbound, PendingMessage
from bot.gateway.limits import for_rasa, names_external_intent
from bot.gateway.outlets import Outbound
from bot.gateway.rasa_client import Reply

PAYLOAD_KINDS = frozenset({"button", "command"})  # stored messages whose payload Rasa may get


def store_inbound(session: Session, *, inbound: Inbound) -> Accepted:
    """Store the customer's message (creating the customer on first contact)."""
    stored = transcript.store_inbound(
        session=session,
        sender_id=inbound.sender_id,
        text=inbound.text,
        payload=inbound.payload,
        external_id=inbound.external_id,
        profile=inbound.profile,
    )
    if not stored.duplicate and inbound.text:
        # An answer to a team's question about a case lands on the case, with the message itself.
        answered = cases.customer_answered(session=session, customer_id=stored.customer.id, text=inbound.text)
        if answered:
            stored.message.payload = {**(stored.message.payload or {}), CASE_ANSWER: answered[-1]}
    return Accepted(stored.conversation.id, stored.message.id, stored.duplicate, stored.message.created_at)


def load_pending(session: Session, *, conversation_id: int) -> tuple[ConversationRef, list[PendingMessage]]:
    """The conversation and its customer messages waiting for an answer, oldest first."""
    conversation = session.get_one(Conversation, conversation_id)
    ref = conversation_ref(session, conversation)
    pending = [
        pending_message(m)
        for m in transcript.pending_inbound(session=session, conversation_id=conversation_id)
    ]
    return ref, pending


def pending_message(message: Message) -> PendingMessage:
    """What Rasa gets for a stored message: the payload of a button the bot offered or of a channel
    command (Reception checked them), else the typed text in a form Rasa reads as words only."""
    payload = message.payload or {}
    rasa_text = for_rasa(message.text or "")
    offered = str(payload.get("rasa_text") or "")
    if payload.get("kind") in PAYLOAD_KINDS and offered and not names_external_intent(offered):
        rasa_text = offered
    case = payload.get(CASE_ANSWER)
    return PendingMessage(
        message.id,
        rasa_text,
        message.attempts,
        bool(payload.get("first_contact")),
        case if isinstance(case, int) else None,
    )


def conversation_ref(session: Session, conversation: Conversation) -> ConversationRef:
    """The conversation as the gateway's parts pass it around (with what Rasa knows of the customer)."""
    customer = session.get_one(Customer, conversation.customer_id)
    metadata = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "language": customer.language,
        "channel": conversation.channel.value,
    }
    handed_off = conversation.status == ConversationStatus.HANDED_OFF
    return ConversationRef(
        conversation.id, conversation.sender_id, conversation.channel, metadata, handed_off
    )


def begin_try(session: Session, *, message_id: int) -> None:
    """Count a try before Rasa sees the message: from now on a retry asks Rasa's tracker first."""
    session.get_one(Message, message_id).attempts += 1


def record_failed_try(session: Session, *, message_id: int, error: str, give_up: bool = False) -> None:
    """Note why the try failed; `give_up`: the message will not be tried again."""
    message = session.get_one(Message, message_id)
    message.error = error[: transcript.MAX_ERROR]
    if give_up:
        message.delivery_status = InboundStatus.FAILED


def store_replies(
    session: Session, *, conversation: ConversationRef, message_id: int, replies: list[Reply]
) -> list[Outbound]:
    """Store the bot's replies to a message and mark the message answered, in one transaction."""
    outbound = store_bot_replies(session, conversation=conversation, replies=replies)
    message = session.get_one(Message, message_id)  # its try was counted by begin_try
    message.delivery_status, message.error = InboundStatus.PROCESSED, None
    return outbound


def store_bot_replies(
    session: Session,
    *,
    conversation: ConversationRef,
    replies: list[Reply],
    extra: dict[str, Any] | None = None,
) -> list[Outbound]:
    """Store the bot's replies as queued outbound messages."""
    stored = []
    for reply in replies:
        payload = {**(reply.payload() or {}), **(extra or {})} or None
        message = transcript.store_outbound(
            session=session,
            conversation_id=conversation.id,
            author=Author.BOT,
            text=reply.text,
            payload=payload,
        )
        stored.append(Outbound.of(message, conversation.sender_id))
    return stored


def store_holding(session: Session, *, conversation: ConversationRef) -> Outbound | None:
    """The holding answer, unless one went out since the oldest waiting message (once per wait)."""
    if transcript.holding_sent_since_oldest_pending(session=session, conversation_id=conversation.id):
        return None
    message = transcript.store_outbound(
        session=session,
        conversation_id=conversation.id,
        author=Author.SYSTEM,
        text=wording.HOLDING,
        payload={"kind": transcript.HOLDING},
    )
    return Outbound.of(message, conversation.sender_id)
