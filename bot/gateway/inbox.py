"""The inbox: every stored customer message is answered through Rasa, in order per conversation,
and the replies are stored and delivered.

While Rasa is slow the gateway keeps waiting for the answer it asked for (up to the Rasa client's
patience): the customer is told once, after its timeout, that we have their message, and gets the
answer the moment Rasa gives it. Hanging up would not help: Rasa would drop the turn and the
message would have to queue again. While Rasa is down (unreachable, errors, or no answer within
the patience) the messages wait in the CRM (the customer is told so once), new messages do not
wait for it (the breaker), and a background sweep retries them until Rasa is back.

A try is counted in the CRM before the message goes to Rasa, so every later try (after a timeout,
a CRM failure while storing the replies, or a crash) first asks Rasa's tracker whether the turn
already ran, and takes its replies from there: a message is never run through the dialogue twice.
An outlet that fails in a way nobody foresaw leaves its message queued with the error recorded,
for the retry, instead of failing the work that delivered it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.crm import cases, reachability, transcript
from bot.crm.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    InboundStatus,
    Message,
    OutboundStatus,
    utcnow,
)
from bot.crm.transcript import Profile
from bot.gateway import wording
from bot.gateway.conversations import Conversations
from bot.gateway.limits import for_rasa, names_external_intent
from bot.gateway.outlets import DeliveryResult, Outbound, Outlet
from bot.gateway.rasa_client import RasaClient, RasaRefused, RasaUnavailable, Reply
from bot.gateway.store import Crm

log = logging.getLogger(__name__)

OUTBOUND_MAX_ATTEMPTS = 5  # a channel failing this often for passing reasons: the message failed
PAYLOAD_KINDS = frozenset({"button", "command"})  # stored messages whose payload Rasa may get
# Set on a stored message by the gateway alone (_store_inbound) when it answered a team's question
# about a case; the bot is then told so through Rasa's HTTP API (_case_answer_replies).
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


class HandedOffRouter(Protocol):
    """Where messages of a conversation a person is in charge of go (the desk)."""

    async def route(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool
    ) -> None: ...

    def changed(self, sender_id: str) -> None: ...

    async def follow_up(self, conversation: ConversationRef) -> ConversationRef: ...

    async def customer_typing(self, sender_id: str, on: bool) -> None: ...

    async def sweep(self) -> None: ...


class Breaker:
    """After Rasa failed, do not make every new message wait for it again until `cooldown` passed.
    Slowness does not trip it (see the module's docstring): only being down does."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        self._open_until = 0.0


class Inbox:
    def __init__(
        self,
        *,
        crm: Crm,
        rasa: RasaClient,
        outlets: dict[Channel, Outlet],
        conversations: Conversations,
        retry_seconds: float,
    ) -> None:
        self.crm, self.rasa, self.outlets = crm, rasa, outlets
        self.conversations = conversations  # one conversation in order (bot/gateway/conversations.py)
        self.retry_seconds = retry_seconds
        self.breaker = Breaker(retry_seconds)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.desk: HandedOffRouter | None = None  # set by the desk when the console runs

    async def accept(self, inbound: Inbound) -> Accepted:
        """Store the message (creating the customer on first contact) before anything else."""
        accepted = await self.crm.run(partial(_store_inbound, inbound=inbound))
        log.info(
            "inbound stored conversation=%s message=%s duplicate=%s",
            accepted.conversation_id,
            accepted.message_id,
            accepted.duplicate,
        )
        self.changed(inbound.sender_id)
        return accepted

    def changed(self, sender_id: str) -> None:
        """The conversation's transcript changed (agents watching it refresh)."""
        if self.desk is not None:
            self.desk.changed(sender_id)

    def process_soon(self, conversation_id: int) -> None:
        """Answer the conversation's waiting messages in the background (for a live customer)."""
        self.spawn(self.process(conversation_id, live=True))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def drain(self, timeout: float = 5.0) -> None:
        """Let running work finish (bounded), then cancel what is left."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def process(self, conversation_id: int, *, live: bool = False, probe: bool = False) -> bool:
        """Answer the conversation's waiting messages in order; True if none is left waiting.

        `live`: a customer is waiting right now (typing indicator; holding answer if Rasa fails).
        `probe`: try Rasa even though it failed recently (the background retry).
        """
        async with self.conversations.hold(conversation_id):
            return await self.answer_waiting(conversation_id, live=live, probe=probe)

    async def answer_waiting(self, conversation_id: int, *, live: bool = False, probe: bool = False) -> bool:
        """`process` for a caller that holds the conversation's lock already (e.g. a hand-back)."""
        conversation, pending = await self.crm.run(partial(_load_pending, conversation_id=conversation_id))
        if not pending:
            return True
        if self.desk is not None and not conversation.handed_off:
            # Soon after a person closed the chat, the customer's next words are for people again.
            conversation = await self.desk.follow_up(conversation)
        if conversation.handed_off and self.desk is not None:
            await self.desk.route(conversation, pending, live=live)
            return True
        done = await self._answer_in_order(conversation, pending, live=live, probe=probe)
        if not done and live:
            await self._hold(conversation)
        return done

    async def _answer_in_order(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool, probe: bool
    ) -> bool:
        outlet = self.outlets.get(conversation.channel)
        if live and outlet is not None:
            await outlet.typing(conversation.sender_id, True)
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
            if live and outlet is not None:
                await outlet.typing(conversation.sender_id, False)

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
        await self.crm.run(partial(_begin_try, message_id=message.id))
        try:
            replies = await self._replies_for(conversation, message)
        except RasaUnavailable as error:
            self.breaker.trip()
            log.warning("rasa unavailable conversation=%s message=%s: %s", conversation.id, message.id, error)
            await self.crm.run(partial(_record_failed_try, message_id=message.id, error=str(error)))
            return False
        except RasaRefused as error:
            log.error("rasa refused conversation=%s message=%s: %s", conversation.id, message.id, error)
            await self.crm.run(
                partial(_record_failed_try, message_id=message.id, error=str(error), give_up=True)
            )
            return True
        self.breaker.reset()
        async with speaking:
            try:
                outbound = await self.crm.run(
                    partial(_store_replies, conversation=conversation, message_id=message.id, replies=replies)
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
            await self.deliver(conversation.channel, outbound)
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
        holding = await self.crm.run(partial(_store_holding, conversation=conversation))
        if holding is not None:
            log.info("holding answer conversation=%s message=%s", conversation.id, holding.id)
            await self.deliver(conversation.channel, [holding])

    async def deliver(self, channel: Channel, messages: Sequence[Outbound]) -> list[OutboundStatus]:
        """Hand stored outbound messages to their channel and record what happened."""
        outlet = self.outlets.get(channel)
        statuses = []
        for message in messages:
            if outlet is None:
                result = DeliveryResult(
                    OutboundStatus.QUEUED,
                    error=f"the {channel.value} channel is not running",
                    attempted=False,
                )
            else:
                result = await _deliver_guarded(outlet, message, channel)
            status = await self.crm.run(partial(_record_delivery, message=message, result=result))
            log.info("outbound message=%s channel=%s status=%s", message.id, channel.value, status.value)
            statuses.append(status)
        for sender_id in {m.sender_id for m in messages}:
            self.changed(sender_id)
        return statuses

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
        if self.desk is not None:
            await self.desk.sweep()
        await self.retry_deliveries()

    async def retry_deliveries(self) -> None:
        """Deliveries that failed for a passing reason (network, rate limit) get another try."""
        before = utcnow() - timedelta(seconds=self.retry_seconds)
        for channel in self.outlets:
            if channel == Channel.WEB:  # web messages wait for the visitor to come back instead
                continue
            messages = await self.crm.run(
                partial(_retryable, channel=channel, before=before, max_attempts=OUTBOUND_MAX_ATTEMPTS)
            )
            for conversation_id, message in messages:
                async with self.conversations.hold(conversation_id):
                    # It may have been delivered while we waited for the lock (e.g. after flood control).
                    if await self.crm.run(partial(_still_queued, message_id=message.id)):
                        await self.deliver(channel, [message])

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


async def _deliver_guarded(outlet: Outlet, message: Outbound, channel: Channel) -> DeliveryResult:
    """The outlet's result; an exception it did not foresee (e.g. a channel answer its client
    library cannot parse) is a failed try, recorded and retried like a network error."""
    try:
        return await outlet.deliver(message)
    except Exception as error:  # the boundary to a channel's library: anything it raises is its failure
        log.exception("outlet failed unexpectedly message=%s channel=%s", message.id, channel.value)
        return DeliveryResult(OutboundStatus.QUEUED, error=f"unexpected {type(error).__name__}: {error}")


def _store_inbound(session: Session, *, inbound: Inbound) -> Accepted:
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


def _load_pending(session: Session, *, conversation_id: int) -> tuple[ConversationRef, list[PendingMessage]]:
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


def _begin_try(session: Session, *, message_id: int) -> None:
    """Count a try before Rasa sees the message: from now on a retry asks Rasa's tracker first."""
    session.get_one(Message, message_id).attempts += 1


def _record_failed_try(session: Session, *, message_id: int, error: str, give_up: bool = False) -> None:
    message = session.get_one(Message, message_id)
    message.error = error[: transcript.MAX_ERROR]
    if give_up:
        message.delivery_status = InboundStatus.FAILED


def _store_replies(
    session: Session, *, conversation: ConversationRef, message_id: int, replies: list[Reply]
) -> list[Outbound]:
    outbound = store_bot_replies(session, conversation=conversation, replies=replies)
    message = session.get_one(Message, message_id)  # its try was counted by _begin_try
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


def _store_holding(session: Session, *, conversation: ConversationRef) -> Outbound | None:
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


def _record_delivery(session: Session, *, message: Outbound, result: DeliveryResult) -> OutboundStatus:
    stored = transcript.record_delivery(
        session=session,
        message_id=message.id,
        status=result.status,
        external_id=result.external_id,
        error=result.error,
        attempted=result.attempted,
    )
    if stored.delivery_status == OutboundStatus.QUEUED and stored.attempts >= OUTBOUND_MAX_ATTEMPTS:
        stored.delivery_status = OutboundStatus.FAILED
    if result.unreachable:
        reachability.mark_unreachable(session=session, sender_id=message.sender_id, reason=result.error or "")
    return OutboundStatus(stored.delivery_status)  # an outbound message: its own lifecycle


def _still_queued(session: Session, *, message_id: int) -> bool:
    return session.get_one(Message, message_id).delivery_status == OutboundStatus.QUEUED


def _retryable(
    session: Session, *, channel: Channel, before: datetime, max_attempts: int
) -> list[tuple[int, Outbound]]:
    messages: list[Message] = transcript.retryable_outbound(
        session=session, channel=channel, before=before, max_attempts=max_attempts
    )
    return [(m.conversation_id, Outbound.of(m, m.conversation.sender_id)) for m in messages]
