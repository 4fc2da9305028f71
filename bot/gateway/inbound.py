"""What the gateway's parts hand each other about customer messages: a message at the door, the
receipt of storing it, the conversation it belongs to, and a stored message waiting for an answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.crm.models import Channel
from bot.crm.transcript import Profile

# Set on a stored message by the gateway alone (inbox_crm.store_inbound) when it answered a team's
# question about a case; the bot is then told so through Rasa's HTTP API (Inbox's case answers).
CASE_ANSWER = "case_answer"
CASE_ANSWER_INTENT = "EXTERNAL_case_answer"


@dataclass(frozen=True)
class Inbound:
    """A customer message that passed the door, about to be stored."""

    sender_id: str
    text: str  # what the customer wrote or clicked, as the transcript shows it
    payload: dict[str, Any] | None = None  # e.g. {"kind": "button", "rasa_text": "/check_order_status"}
    external_id: str | None = None  # the channel's own id for it, so a redelivery is not stored twice
    profile: Profile | None = None


@dataclass(frozen=True)
class Accepted:
    conversation_id: int
    message_id: int
    duplicate: bool
    created_at: datetime


@dataclass(frozen=True)
class ConversationRef:
    id: int
    sender_id: str
    channel: Channel
    metadata: dict[str, Any]  # what Rasa's `session_started_metadata` gets
    handed_off: bool = False  # a person is in charge: messages go to them (bot/gateway/desk.py)


@dataclass(frozen=True)
class PendingMessage:
    """A stored customer message the bot has not answered yet."""

    id: int
    rasa_text: str
    attempts: int
    first_contact: bool  # the customer was created for this message
    case_answer: int | None = None  # the case whose team's question this message answered
