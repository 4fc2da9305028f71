"""The inbox: every stored customer message is answered through Rasa, in order per conversation,
and the replies are stored and delivered.

While Rasa is slow the gateway keeps waiting for the answer it asked for (up to the Rasa client's
patience): the customer is told once, after its timeout, that we have their message, and gets the
answer the moment Rasa gives it. Hanging up would not help: Rasa would drop the turn and the
message would have to queue again. While Rasa is down (unreachable, errors, or no answer within
the patience) the messages wait in the CRM (the customer is told so once), new messages do not
wait for it (the breaker, bot/gateway/breaker.py), and a background sweep retries them until Rasa
is back.

A try is counted in the CRM before the message goes to Rasa, so every later try (after a timeout,
a CRM failure while storing the replies, or a crash) first asks Rasa's tracker whether the turn
already ran, and takes its replies from there: a message is never run through the dialogue twice.

Two parts: `BotAnswers` gets the bot's answers to a conversation's waiting messages; `Inbox` takes
messages in and decides, per conversation, whether the bot (`BotAnswers`) or a person (the desk,
a `HandedOffRouter`) answers them. The desk's hand-back uses `BotAnswers` itself, so the desk and
the inbox need not know each other both ways. What goes in and out lives in
bot/gateway/inbound.py, the CRM work in bot/gateway/inbox_crm.py, delivery in
bot/gateway/delivery.py."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.crm import transcript
from bot.gateway import inbox_crm
from bot.gateway.background import Background
from bot.gateway.breaker import Breaker
from bot.gateway.conversations import Conversations
from bot.gateway.delivery import Delivery, Watchers
from bot.gateway.inbound import CASE_ANSWER_INTENT, Accepted, ConversationRef, Inbound, PendingMessage
from bot.gateway.rasa_client import RasaClient, RasaRefused, RasaUnavailable, Reply
from bot.gateway.store import Crm

log = logging.getLogger(__name__)


class HandedOffRouter(Protocol):
    """Where messages of a conversation a person is in charge of go (the desk)."""

    async def route(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool
    ) -> None: ...

    async def follow_up(self, conversation: ConversationRef) -> ConversationRef: ...

    async def sweep(self) -> None: ...


class BotAnswers:
    """The bot's answers to a conversation's waiting messages, through Rasa; the caller holds the
    conversation (bot/gateway/conversations.py)."""

    def __init__(self, *, crm: Crm, rasa: RasaClient, breaker: Breaker, delivery: Delivery) -> None:
        self.crm, self.rasa, self.breaker, self.delivery = crm, rasa, breaker, delivery

    async def answer_waiting(self, conversation_id: int, *, live: bool = False) -> bool:
        """Answer the conversation's waiting messages by the bot; True if none is left waiting."""
        conversation, pending = await self.crm.run(
            partial(inbox_crm.load_pending, conversation_id=conversation_id)
        )
        return await self.answer(conversation, pending, live=live) if pending else True

    async def answer(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool, probe: bool = False
    ) -> bool:
        """Answer `pending` in order; True if none is left waiting (a live customer left waiting
        is told we have their message)."""
        done = await self._answer_in_order(conversation, pending, live=live, probe=probe)
        if not done and live:
            await self._hold(conversation)
        return done

    async def _answer_in_order(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool, probe: bool
    ) -> bool:
        if live:
            await self.delivery.typing(conversation.channel, conversation.sender_id, True)
        finished, speaking = asyncio.Event(), asyncio.Lock()
        holding = None
        if live:  # a customer who waits longer than Rasa's timeout is told we have their message
            holding = asyncio.create_task(self._hold_unless(finished, speaking, conversation))
        try:
            for message in pending:
                if not (probe or self.breaker.allows()):
                    return False
                if not await self._answer(conversation, message, speaking):
                    return False
                probe = False
            return True
        finally:
            finished.set()
            if holding is not None:
                await holding
            if live:
                await self.delivery.typing(conversation.channel, conversation.sender_id, False)

    async def _hold_unless(
        self, finished: asyncio.Event, speaking: asyncio.Lock, conversation: ConversationRef
    ) -> None:
        """Give the holding answer if the answers are not all out within Rasa's timeout."""
        try:
            await asyncio.wait_for(finished.wait(), self.rasa.timeout)
        except asyncio.TimeoutError:
            try:
                async with speaking:  # never between an answer being stored and delivered
                    await self._hold(conversation)
            except Exception:  # the answers carry on; a lost holding answer is only logged
                log.exception("holding answer failed conversation=%s", conversation.id)

    async def _answer(
        self, conversation: ConversationRef, message: PendingMessage, speaking: asyncio.Lock
    ) -> bool:
        """Get Rasa's replies to one message, store and deliver them; False if it must wait (Rasa
        unavailable, or the replies could not be stored)."""
        await self.crm.run(partial(inbox_crm.begin_try, message_id=message.id))
        try:
            replies = await self._replies_for(conversation, message)
        except RasaUnavailable as error:
            self.breaker.trip()
            log.warning("rasa unavailable conversation=%s message=%s: %s", conversation.id, message.id, error)
            await self.crm.run(partial(inbox_crm.record_failed_try, message_id=message.id, error=str(error)))
            return False
        except RasaRefused as error:
            log.error("rasa refused conversation=%s message=%s: %s", conversation.id, message.id, error)
            await self.crm.run(
                partial(inbox_crm.record_failed_try, message_id=message.id, error=str(error), give_up=True)
            )
            return True
        self.breaker.reset()
        async with speaking:
            try:
                outbound = await self.crm.run(
                    partial(
                        inbox_crm.store_replies,
                        conversation=conversation,
                        message_id=message.id,
                        replies=replies,
                    )
                )
            except SQLAlchemyError as error:
                # The turn ran; the next try takes its replies from Rasa's tracker (see the module).
                log.warning(
                    "replies not stored conversation=%s message=%s: %s",
                    conversation.id,
                    message.id,
                    type(error).__name__,
                )
                return False
            log.info(
                "inbound answered conversation=%s message=%s replies=%s",
                conversation.id,
                message.id,
                len(outbound),
            )
            await self.delivery.deliver(conversation.channel, outbound)
        return True

    async def _replies_for(self, conversation: ConversationRef, message: PendingMessage) -> list[Reply]:
        if message.case_answer is not None:
            return await self._case_answer_replies(conversation, message, message.case_answer)
        if message.attempts > 0:
            # An earlier try may have reached Rasa after all (we stopped waiting, it carried on):
            # then its answer is in the tracker, and sending the message again would repeat it.
            given = await self.rasa.replies_already_given(conversation.sender_id, message.id)
            if given is not None:
                return given
        return await self.rasa.send_message(
            conversation.sender_id,
            message.rasa_text,
            message_id=message.id,
            channel=conversation.channel.value,
            metadata={**conversation.metadata, "first_contact": message.first_contact},
        )

    async def _case_answer_replies(
        self, conversation: ConversationRef, message: PendingMessage, complaint_id: int
    ) -> list[Reply]:
        """The customer answered a team's question about a case (it is on the case already): their
        words go into Rasa's tracker as history, then the bot hears EXTERNAL_case_answer through the
        HTTP API (external intents never come through the channel) and acknowledges the answer.
        A retry after a timeout may acknowledge twice; the answer itself is on the case once."""
        await self.rasa.add_user_message(
            conversation.sender_id,
            message.rasa_text,
            message_id=message.id,
            sent_at=time.time(),
            channel=conversation.channel.value,
        )
        return await self.rasa.trigger_intent(
            conversation.sender_id, CASE_ANSWER_INTENT, {"complaint_id": str(complaint_id)}
        )

    async def _hold(self, conversation: ConversationRef) -> None:
        """Tell the customer we have their message, once per wait (not once per message)."""
        holding = await self.crm.run(partial(inbox_crm.store_holding, conversation=conversation))
        if holding is not None:
            log.info("holding answer conversation=%s message=%s", conversation.id, holding.id)
            await self.delivery.deliver(conversation.channel, [holding])


class Inbox:
    """Customer messages in: stored first, then answered by the bot or routed to a person."""

    def __init__(
        self,
        *,
        crm: Crm,
        answers: BotAnswers,
        desk: HandedOffRouter,
        delivery: Delivery,
        conversations: Conversations,
        background: Background,
        watchers: Watchers,
        retry_seconds: float,
    ) -> None:
        self.crm, self.answers, self.desk, self.delivery = crm, answers, desk, delivery
        self.conversations = conversations  # one conversation in order (bot/gateway/conversations.py)
        self.background, self.watchers = background, watchers
        self.retry_seconds = retry_seconds

    async def accept(self, inbound: Inbound) -> Accepted:
        """Store the message (creating the customer on first contact) before anything else."""
        accepted = await self.crm.run(partial(inbox_crm.store_inbound, inbound=inbound))
        log.info(
            "inbound stored conversation=%s message=%s duplicate=%s",
            accepted.conversation_id,
            accepted.message_id,
            accepted.duplicate,
        )
        self.watchers.changed(inbound.sender_id)
        return accepted

    def process_soon(self, conversation_id: int) -> None:
        """Answer the conversation's waiting messages in the background (for a live customer)."""
        self.background.spawn(self.process(conversation_id, live=True))

    async def process(self, conversation_id: int, *, live: bool = False, probe: bool = False) -> bool:
        """Answer the conversation's waiting messages in order; True if none is left waiting.

        `live`: a customer is waiting right now (typing indicator; holding answer if Rasa fails).
        `probe`: try Rasa even though it failed recently (the background retry).
        """
        async with self.conversations.hold(conversation_id):
            return await self._answer_waiting(conversation_id, live=live, probe=probe)

    async def _answer_waiting(self, conversation_id: int, *, live: bool, probe: bool) -> bool:
        conversation, pending = await self.crm.run(
            partial(inbox_crm.load_pending, conversation_id=conversation_id)
        )
        if not pending:
            return True
        if not conversation.handed_off:
            # Soon after a person closed the chat, the customer's next words are for people again.
            conversation = await self.desk.follow_up(conversation)
        if conversation.handed_off:
            await self.desk.route(conversation, pending, live=live)
            return True
        return await self.answers.answer(conversation, pending, live=live, probe=probe)

    async def sweep(self) -> None:
        """Retry waiting inbound messages (oldest conversation first) and failed deliveries, and
        give Rasa what it missed of handed-off conversations (the desk).

        The first conversation tried probes Rasa even while the breaker is open; the sweep stops
        at the first one Rasa fails (it is down: the rest would fail alike). Conversations being
        answered right now (e.g. waiting for a slow Rasa) are left to that work."""
        conversation_ids = await self.crm.run(partial(transcript.conversations_with_pending, limit=200))
        probe = True
        for conversation_id in conversation_ids:
            if self.conversations.busy(conversation_id):
                continue
            if not await self.process(conversation_id, probe=probe):
                break
            probe = False
        await self.desk.sweep()
        await self.delivery.retry()

    async def run_forever(self) -> None:
        """The background retry loop; it starts at once, so messages stored before a restart go first."""
        while True:
            try:
                await self.sweep()
            except SQLAlchemyError as error:
                log.warning("inbox sweep: CRM unavailable (%s)", type(error).__name__)
            except Exception:  # the loop must outlive any one failure; it is logged, not hidden
                log.exception("inbox sweep failed")
            await asyncio.sleep(self.retry_seconds)
