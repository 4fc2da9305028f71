"""Rasa's copy of a conversation a person is in charge of.

While a conversation is handed off, each customer message is also sent to Rasa so that its tracker
has it (Rasa answers nothing: the conversation is paused). An unreachable Rasa never holds a
message back: the transcript notes that the tracker missed it, and once Rasa is back (the inbox's
sweep) or before the chat is handed back, the missed messages are added to the tracker as history,
with Rasa's reading of each, so the bot picks up knowing what was said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import transcript
from bot.crm.models import Author, Conversation, ConversationStatus, Message
from bot.gateway.breaker import Breaker
from bot.gateway.conversations import Conversations
from bot.gateway.inbound import ConversationRef, PendingMessage
from bot.gateway.inbox_crm import pending_message
from bot.gateway.rasa_client import COPY_KEY, RasaClient, RasaRefused, RasaUnavailable
from bot.gateway.store import Crm

log = logging.getLogger(__name__)

NOT_IN_TRACKER = "not in Rasa's tracker: "
CATCH_UP_BATCH = 100  # conversations per sweep


class TrackerCopy:
    def __init__(self, *, crm: Crm, rasa: RasaClient, breaker: Breaker, conversations: Conversations) -> None:
        self.crm, self.rasa, self.conversations = crm, rasa, conversations
        self.breaker = breaker  # the inbox's: Rasa down for one is down for both
        # Whether the CRM may hold missed messages: at start (a restart may have left some) and
        # after a miss. The sweep looks only then, not every few seconds.
        self._maybe_missed = True

    async def give(self, conversation: ConversationRef, message: PendingMessage) -> bool:
        """Send a routed message to Rasa's tracker; True if Rasa answered it (it was not paused)."""
        if not self.breaker.allows():
            await self._missed(message, "Rasa was unavailable")
            return False
        try:
            replies = await self.rasa.send_message(
                conversation.sender_id,
                message.rasa_text,
                message_id=message.id,
                channel=conversation.channel.value,
                metadata={**conversation.metadata, COPY_KEY: True},
            )
        except RasaUnavailable as error:
            self.breaker.trip()
            await self._missed(message, str(error))
            return False
        except RasaRefused as error:
            await self._missed(message, str(error))
            return False
        self.breaker.reset()
        return bool(replies)

    async def catch_up(self, conversation_id: int) -> int:
        """Give Rasa's tracker the customer messages it missed while it was down, oldest first, as
        history (nothing is answered: a person is in charge). The caller holds the conversation.
        Raises RasaUnavailable / RasaRefused if Rasa cannot take them."""
        missed = await self.crm.run(partial(_missed_by_tracker, conversation_id=conversation_id))
        for late in missed:
            await self.rasa.add_user_message(
                late.sender_id,
                late.text,
                message_id=late.message_id,
                sent_at=late.sent_at,
                channel=late.channel,
            )
            await self.crm.run(partial(_caught_up, message_id=late.message_id))
            log.info("handed-off message=%s added to the tracker late", late.message_id)
        return len(missed)

    async def sweep(self) -> None:
        """Part of the inbox's sweep: once Rasa answers again, catch the trackers up. A conversation
        Rasa refuses (4xx) is tried again after the next miss or restart, not every sweep."""
        if not self._maybe_missed or not self.breaker.allows():
            return
        self._maybe_missed = False  # a miss from now on sets it again
        try:
            conversation_ids = await self.crm.run(_conversations_missed_by_tracker)
            for conversation_id in conversation_ids:
                try:
                    async with self.conversations.hold(conversation_id):
                        await self.catch_up(conversation_id)
                except RasaRefused as error:
                    log.warning("tracker catch-up conversation=%s refused: %s", conversation_id, error)
        except RasaUnavailable as error:
            self._maybe_missed = True
            self.breaker.trip()
            log.warning("tracker catch-up stopped: %s", error)
            return
        except BaseException:
            self._maybe_missed = True
            raise
        if len(conversation_ids) >= CATCH_UP_BATCH:
            self._maybe_missed = True  # more than one batch: the next sweep goes on

    async def _missed(self, message: PendingMessage, why: str) -> None:
        self._maybe_missed = True
        log.warning("handed-off message=%s not in the tracker: %s", message.id, why)
        await self.crm.run(partial(_note_error, message_id=message.id, error=NOT_IN_TRACKER + why))


_MISSED = (
    Conversation.status == ConversationStatus.HANDED_OFF,
    Message.author == Author.CUSTOMER,
    Message.error.startswith(NOT_IN_TRACKER, autoescape=True),
)


@dataclass(frozen=True)
class LateMessage:
    message_id: int
    sender_id: str
    channel: str
    text: str
    sent_at: float  # POSIX time


def _missed_by_tracker(session: Session, *, conversation_id: int) -> list[LateMessage]:
    """The customer messages of a handed-off conversation that Rasa's tracker has not got."""
    query = (
        select(Message, Conversation)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.conversation_id == conversation_id, *_MISSED)
        .order_by(Message.id)
    )
    return [
        LateMessage(
            message.id,
            conversation.sender_id,
            conversation.channel.value,
            pending_message(message).rasa_text,
            message.created_at.timestamp(),
        )
        for message, conversation in session.execute(query).tuples()
    ]


def _conversations_missed_by_tracker(session: Session, limit: int = CATCH_UP_BATCH) -> list[int]:
    query = (
        select(Message.conversation_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(*_MISSED)
        .group_by(Message.conversation_id)
        .order_by(func.min(Message.id))
        .limit(limit)
    )
    return list(session.scalars(query))


def _caught_up(session: Session, *, message_id: int) -> None:
    session.get_one(Message, message_id).error = None


def _note_error(session: Session, *, message_id: int, error: str) -> None:
    session.get_one(Message, message_id).error = error[: transcript.MAX_ERROR]
