"""Counting what was lost or doubled, from the CRM transcript and what the customers received.

Chat: every message a customer sent must be in the transcript exactly once and be followed by a
bot answer or the gateway's honest holding answer, and every answer stored must have reached the
customer, once. Proactive: every delivery the sender recorded as sent must have left as exactly
one campaign message, and Telegram must have received each Telegram one exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Author,
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    OutboundStatus,
    OutreachKind,
)
from bot.crm.transcript import HOLDING


@dataclass
class ChatLedger:
    sent: int = 0  # messages the customers sent
    stored: int = 0  # ... found in the transcript
    lost: int = 0  # sent, not in the transcript
    duplicated: int = 0  # extra transcript copies of a sent message
    answered: int = 0  # followed by a bot answer
    holding_only: int = 0  # followed only by the holding answer (the real one still to come)
    unanswered: int = 0  # followed by neither
    replies_stored: int = 0  # outbound messages in the transcript
    replies_undelivered: int = 0  # stored, never reached the customer
    replies_received_twice: int = 0  # reached the customer more than once

    def losses(self) -> int:
        return self.lost + self.unanswered + self.replies_undelivered

    def duplicates(self) -> int:
        return self.duplicated + self.replies_received_twice

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "losses": self.losses(), "duplicates": self.duplicates()}


def audit_chat(
    *, session: Session, sent: Mapping[str, Sequence[str]], received: Mapping[str, Sequence[int]]
) -> ChatLedger:
    """`sent`: sender id -> the client ids of the messages sent; `received`: sender id -> the ids
    of the messages the customer's socket got, in order."""
    ledger = ChatLedger()
    for sender_id, client_ids in sent.items():
        transcript = _transcript(session, sender_id)
        _count_inbound(ledger, transcript, client_ids)
        _count_answers(ledger, transcript)
        _count_deliveries(ledger, transcript, received.get(sender_id, ()))
    return ledger


def _transcript(session: Session, sender_id: str) -> list[Message]:
    conversation = session.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
    if conversation is None:
        return []
    return list(
        session.scalars(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        )
    )


def _count_inbound(ledger: ChatLedger, transcript: list[Message], client_ids: Sequence[str]) -> None:
    stored = Counter(m.external_id for m in transcript if m.direction is Direction.INBOUND)
    for client_id in client_ids:
        ledger.sent += 1
        copies = stored.get(client_id, 0)
        ledger.stored += min(copies, 1)
        ledger.lost += copies == 0
        ledger.duplicated += max(copies - 1, 0)


def _count_answers(ledger: ChatLedger, transcript: list[Message]) -> None:
    """Each inbound message is answered by the outbound messages up to the next inbound one."""
    for position, message in enumerate(transcript):
        if message.direction is not Direction.INBOUND:
            continue
        after = []
        for later in transcript[position + 1 :]:
            if later.direction is Direction.INBOUND:
                break
            after.append(later)
        if any(m.author in (Author.BOT, Author.AGENT) for m in after):
            ledger.answered += 1
        elif any((m.payload or {}).get("kind") == HOLDING for m in after):
            ledger.holding_only += 1
        else:
            ledger.unanswered += 1


def _count_deliveries(ledger: ChatLedger, transcript: list[Message], received: Iterable[int]) -> None:
    times = Counter(received)
    for message in transcript:
        if message.direction is Direction.OUTBOUND:
            ledger.replies_stored += 1
            ledger.replies_undelivered += times.get(message.id, 0) == 0
            ledger.replies_received_twice += max(times.get(message.id, 0) - 1, 0)


@dataclass
class ProactiveLedger:
    deliveries: int = 0  # campaign deliveries queued by the fan-out
    sent: int = 0  # ... that the sender recorded as sent
    skipped: int = 0  # ... that the policy gate (or the gateway) turned away
    open: int = 0  # ... still queued, sending, or failed
    messages: int = 0  # campaign messages the gateway stored
    lost: int = 0  # sent deliveries without a campaign message
    duplicated: int = 0  # the same campaign message stored twice for one customer
    telegram_messages: int = 0  # campaign messages to Telegram chats
    telegram_received: int = 0  # ... that the Telegram stand-in accepted
    telegram_lost: int = 0
    telegram_received_twice: int = 0  # the same text to the same chat again
    web_waiting: int = 0  # campaign messages waiting for an offline web visitor

    def losses(self) -> int:
        return self.lost + self.telegram_lost

    def duplicates(self) -> int:
        return self.duplicated + self.telegram_received_twice

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "losses": self.losses(), "duplicates": self.duplicates()}


def audit_campaign(
    *, session: Session, campaign_id: int, telegram_sent: Sequence[dict[str, Any]]
) -> ProactiveLedger:
    """`telegram_sent`: the messages the Telegram stand-in accepted (with `chat_id`)."""
    ledger = ProactiveLedger()
    sent_to: set[int] = set()
    for status, customer_id in session.execute(
        select(Delivery.status, Delivery.customer_id).where(
            Delivery.campaign_id == campaign_id, Delivery.kind == OutreachKind.CAMPAIGN
        )
    ):
        ledger.deliveries += 1
        if status is DeliveryStatus.SENT:
            ledger.sent += 1
            sent_to.add(customer_id)
        elif status is DeliveryStatus.SKIPPED:
            ledger.skipped += 1
        else:
            ledger.open += 1
    per_customer: Counter[int] = Counter()
    copies: Counter[tuple[int, str]] = Counter()
    telegram_chats: set[str] = set()
    for customer_id, channel, external_id, message in _campaign_messages(session):
        ledger.messages += 1
        per_customer[customer_id] += 1
        copies[(customer_id, message.text or "")] += 1
        if channel is Channel.TELEGRAM:
            ledger.telegram_messages += 1
            telegram_chats.add(external_id)
        elif message.delivery_status is OutboundStatus.QUEUED:
            ledger.web_waiting += 1
    ledger.lost = sum(1 for c in sent_to if per_customer[c] == 0)
    ledger.duplicated = sum(n - 1 for n in copies.values())
    received = Counter((str(m["chat_id"]), str(m.get("text", ""))) for m in telegram_sent)
    chats_reached = {chat for chat, _ in received}
    ledger.telegram_received = sum(received.values())
    ledger.telegram_lost = len(telegram_chats - chats_reached)
    ledger.telegram_received_twice = sum(n - 1 for n in received.values())
    return ledger


def _campaign_messages(session: Session) -> list[tuple[int, Channel, str, Message]]:
    """(customer, channel, chat or visitor id, message) of every campaign message stored."""
    rows = session.execute(
        select(Conversation.customer_id, Conversation.channel, Conversation.sender_id, Message)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.direction == Direction.OUTBOUND)
    )
    return [
        (customer_id, channel, sender_id.split(":", 1)[1], message)
        for customer_id, channel, sender_id, message in rows
        if (message.payload or {}).get("proactive") == "EXTERNAL_campaign"
    ]
