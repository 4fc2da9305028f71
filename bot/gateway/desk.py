"""The gateway's side of a handoff: customer messages go to the agent while a person is in charge,
agents' messages go out through the customer's channel, and the agent console sees it all live.

While a conversation is handed off, a customer's stored message is shown to the agent and marked
processed at once, and Rasa's tracker gets its copy (bot/gateway/tracker_copy.py). Handing back
brings that copy up to date and resumes the conversation in Rasa first, so the bot is never silent
in a conversation nobody holds.

A hand-over is closed with the customer: closing sends the agent's resolution through the
customer's channel like any agent message, and the customer's next message within the follow-up
window goes to people again (the agent who closed it, if at the console). Handing back makes the
bot answer the customer's last unanswered message first, as the inbox answers any message
(`BotAnswers`, bot/gateway/inbox.py); the rating comes after, and only when that answer left no
question open."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.websockets import WebSocket

from bot.crm import desk, handoffs, transcript
from bot.crm.business_hours import BusinessHours
from bot.crm.desk import Chat, DeskError
from bot.crm.models import (
    HANDOFF_CALLBACK,
    Agent,
    Author,
    Conversation,
    ConversationStatus,
    Customer,
    Direction,
    HandoffStatus,
    InboundStatus,
    Message,
    OutboundStatus,
    OutreachKind,
    utcnow,
)
from bot.gateway import wording
from bot.gateway.background import Background
from bot.gateway.conversations import Conversations
from bot.gateway.delivery import Delivery
from bot.gateway.inbound import ConversationRef, PendingMessage
from bot.gateway.inbox import BotAnswers
from bot.gateway.inbox_crm import store_bot_replies
from bot.gateway.limits import screen
from bot.gateway.outlets import Outbound
from bot.gateway.rasa_client import RasaClient, RasaRefused, RasaUnavailable
from bot.gateway.sockets import send_frame
from bot.gateway.store import Crm
from bot.gateway.tracker_copy import TrackerCopy
from scheduler.policy import record_contact

log = logging.getLogger(__name__)
EndedInCrm = TypeVar("EndedInCrm")

HANDBACK_INTENT = "EXTERNAL_handback"
SEND_TIMEOUT = 5.0
DESK_NOTICE = "desk"  # payload kind of the gateway's own messages about the handoff
RESOLUTION = "resolution"  # payload kind of the agent's closing message
BOT_UNREACHABLE = (
    "The bot cannot be reached right now, so the chat stays with you. Please try again in a minute."
)


@dataclass(frozen=True)
class Said:
    message_id: int
    status: OutboundStatus


@dataclass(frozen=True)
class Ended:
    chat: Chat
    followed_up: bool  # the bot's follow-up (the CSAT question) reached the customer's channel
    told: OutboundStatus | None = None  # closing: where the resolution sent to the customer is
    answered: bool | None = (
        None  # handing back: the bot answered the customer's last message (None: none waited)
    )


class ConsoleHub:
    """The agent console's open websockets, and what each one watches."""

    def __init__(self, background: Background) -> None:
        self.background = background  # refreshes go out without holding up the change itself
        self._agents: dict[WebSocket, int] = {}
        self._watching: dict[WebSocket, str] = {}  # socket -> sender id of the chat on screen

    def join(self, socket: WebSocket, agent_id: int) -> None:
        self._agents[socket] = agent_id

    def leave(self, socket: WebSocket) -> None:
        self._agents.pop(socket, None)
        self._watching.pop(socket, None)

    def watch(self, socket: WebSocket, sender_id: str | None) -> None:
        if sender_id is None:
            self._watching.pop(socket, None)
        else:
            self._watching[socket] = sender_id

    @property
    def connected(self) -> bool:
        return bool(self._agents)

    def watched(self, sender_id: str) -> bool:
        return sender_id in self._watching.values()

    def changed(self, sender_id: str) -> None:
        """Something in this conversation changed: the agents watching it refresh."""
        if self.watched(sender_id):
            self.background.spawn(self.conversation_changed(sender_id))

    async def customer_typing(self, sender_id: str, on: bool) -> None:
        """The customer is typing: shown to the agents watching the conversation."""
        if self.watched(sender_id):
            await self.typing(sender_id, on)

    async def queue_changed(self) -> None:
        await self._send(list(self._agents), {"type": "queue"})

    async def conversation_changed(self, sender_id: str) -> None:
        await self._send(self._watchers(sender_id), {"type": "conversation"})

    async def typing(self, sender_id: str, on: bool) -> None:
        await self._send(self._watchers(sender_id), {"type": "typing", "on": on})

    async def tell_agent(self, agent_id: int, text: str) -> None:
        await self._send(
            [s for s, a in self._agents.items() if a == agent_id], {"type": "notice", "text": text}
        )

    def _watchers(self, sender_id: str) -> list[WebSocket]:
        return [socket for socket, watched in self._watching.items() if watched == sender_id]

    async def _send(self, sockets: Sequence[WebSocket], frame: dict[str, Any]) -> None:
        for socket in sockets:
            if not await send_frame(socket, frame, timeout=SEND_TIMEOUT):
                self.leave(socket)


class Desk:
    """Handoffs as the gateway runs them: routing, agents' actions, and the re-queue sweep."""

    def __init__(
        self,
        *,
        crm: Crm,
        rasa: RasaClient,
        answers: BotAnswers,
        delivery: Delivery,
        tracker: TrackerCopy,
        conversations: Conversations,
        hub: ConsoleHub,
        away_seconds: float,
        max_chars: int,
        hours: BusinessHours,
        unattended_seconds: float,
        follow_up: timedelta = timedelta(minutes=30),
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 1.0,
    ) -> None:
        # `crm` is the customers' lane the inbox writes on: a chat's changes stay in order with its messages.
        self.crm, self.rasa, self.hub = crm, rasa, hub
        # The bot's answers for a hand-back (the inbox routes to the desk, so the desk does not
        # route back through the inbox), and the delivery every sent message goes through.
        self.answers, self.delivery = answers, delivery
        self.conversations = conversations
        self.away_seconds, self.max_chars, self.clock = away_seconds, max_chars, clock
        self.hours, self.unattended_seconds = hours, unattended_seconds
        self.follow_up_within = follow_up
        self.poll_seconds = poll_seconds
        self.sweep_seconds = min(10.0, away_seconds / 4)
        self._queue_seen: object = None
        self.tracker = tracker

    # ---- customer side -------------------------------------------------------------------------

    async def route(
        self, conversation: ConversationRef, pending: list[PendingMessage], *, live: bool
    ) -> None:
        """Give a handed-off conversation's new messages to the agent, then to Rasa's tracker."""
        await self.crm.run(partial(_mark_routed, message_ids=[m.id for m in pending]))
        log.info("routed to the agent conversation=%s messages=%s", conversation.id, [m.id for m in pending])
        self.changed(conversation.sender_id)
        if live:  # no bot answer is coming
            await self.delivery.typing(conversation.channel, conversation.sender_id, False)
        for message in pending:
            if await self.tracker.give(conversation, message):  # Rasa was not paused (a pause was lost)
                log.warning(
                    "rasa answered in a handed-off conversation=%s: pausing it again", conversation.id
                )
                await self._pause(conversation.sender_id)

    async def sweep(self) -> None:
        """Part of the inbox's sweep: Rasa's trackers catch up with what they missed."""
        await self.tracker.sweep()

    def changed(self, sender_id: str) -> None:
        """Something in this conversation changed: the agents watching it refresh."""
        self.hub.changed(sender_id)

    async def follow_up(self, conversation: ConversationRef) -> ConversationRef:
        """The customer wrote soon after a person closed the chat: people have it again (the agent
        who closed it if they are at the console, else the queue as a follow-up), the bot is paused
        and the customer is told. The caller holds the conversation. Otherwise nothing changes."""
        reopened = await self.crm.run(
            partial(
                _follow_up,
                conversation_id=conversation.id,
                now=self.clock(),
                within=self.follow_up_within,
                away_seconds=self.away_seconds,
            )
        )
        if reopened is None:
            return conversation
        item, notice = reopened
        log.info(
            "follow-up handoff=%s after handoff=%s claimed=%s",
            item.chat.handoff_id,
            item.follows,
            item.claimed,
        )
        await self._pause(conversation.sender_id)
        await self.delivery.deliver(conversation.channel, [notice])
        if item.claimed:
            await self.hub.tell_agent(
                item.agent_id,
                f"A follow-up from a customer whose chat you closed (handoff {item.chat.handoff_id}).",
            )
        await self.hub.queue_changed()
        return dataclasses.replace(conversation, handed_off=True)

    # ---- agent side ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _chat(self, handoff_id: int) -> AsyncIterator[Chat]:
        """The handoff's chat, with its conversation to ourselves (the inbox waits meanwhile)."""
        chat = await self.crm.run(partial(desk.chat_of, handoff_id=handoff_id))
        async with self.conversations.hold(chat.conversation_id):
            yield chat

    async def claim(self, handoff_id: int, agent_id: int) -> Chat:
        """Take a waiting chat (one winner among agents racing for it); the customer is told."""
        async with self._chat(handoff_id):
            chat, joined = await self.crm.run(
                partial(_claim, handoff_id=handoff_id, agent_id=agent_id, now=self.clock())
            )
            if joined is not None and chat.mode == HANDOFF_CALLBACK:
                await self._pause(chat.sender_id)  # the bot was still helping: a person takes over
            if joined is not None:
                log.info("handoff=%s claimed by agent=%s", handoff_id, agent_id)
                await self.delivery.deliver(chat.channel, [joined])
        await self.hub.queue_changed()
        return chat

    async def say(self, handoff_id: int, agent_id: int, raw: str) -> Said:
        """An agent's message: stored as theirs, delivered through the customer's channel."""
        text, refusal = screen(raw, self.max_chars)
        if refusal is not None:
            raise DeskError(
                "Write something first."
                if refusal.code == "empty"
                else f"Keep it under {self.max_chars:,} characters.",
                400,
            )
        async with self._chat(handoff_id) as chat:
            outbound = await self.crm.run(
                partial(_store_agent_message, handoff_id=handoff_id, agent_id=agent_id, text=text)
            )
            (status,) = await self.delivery.deliver(chat.channel, [outbound])
        log.info("agent=%s message=%s handoff=%s status=%s", agent_id, outbound.id, handoff_id, status.value)
        return Said(outbound.id, status)

    async def agent_typing(self, handoff_id: int, agent_id: int, on: bool) -> None:
        chat = await self.crm.run(partial(desk.held_chat, handoff_id=handoff_id, agent_id=agent_id))
        await self.delivery.typing(chat.channel, chat.sender_id, on, who="agent")

    async def transfer(self, handoff_id: int, agent_id: int, to_agent_id: int) -> str:
        chat, target = await self.crm.run(
            partial(
                desk.transfer,
                handoff_id=handoff_id,
                agent_id=agent_id,
                to_agent_id=to_agent_id,
                away_seconds=self.away_seconds,
                now=self.clock(),
            )
        )
        await self.hub.tell_agent(target.id, f"A chat was transferred to you (handoff {chat.handoff_id}).")
        await self.hub.queue_changed()
        return target.display_name

    async def note(self, handoff_id: int, agent_id: int, text: str) -> None:
        await self.crm.run(partial(desk.add_note, handoff_id=handoff_id, agent_id=agent_id, text=text))
        chat = await self.crm.run(partial(desk.chat_of, handoff_id=handoff_id))
        self.changed(chat.sender_id)

    async def hand_back(self, handoff_id: int, agent_id: int) -> Ended:
        """Give the conversation back to the bot: it answers the customer's last unanswered message
        first (as the inbox answers any message; the conversation is the bot's again, and held, so
        no follow-up or routing to a person applies), then asks for a rating."""
        async with self._chat(handoff_id) as chat:
            chat, waiting = await self._end(
                chat,
                agent_id,
                partial(_return_to_bot, handoff_id=handoff_id, agent_id=agent_id, now=self.clock()),
            )
            answered = None
            if waiting is not None:
                answered = await self.answers.answer_waiting(chat.conversation_id, live=True)
            followed_up = answered is not False and await self._rating_after(chat)
        await self.hub.queue_changed()
        self.changed(chat.sender_id)
        return Ended(chat, followed_up, answered=answered)

    async def close(self, handoff_id: int, agent_id: int, resolution: str) -> Ended:
        """Close with a resolution, which the customer reads (sent like any agent message and kept
        on the handoff); the bot answers the customer's next message again, unless it comes within
        the follow-up window (see `follow_up`)."""
        text = _resolution_text(resolution)
        async with self._chat(handoff_id) as chat:
            chat, told = await self._end(
                chat,
                agent_id,
                partial(
                    _close_telling, handoff_id=handoff_id, agent_id=agent_id, text=text, now=self.clock()
                ),
            )
            (status,) = await self.delivery.deliver(chat.channel, [told])
        log.info("handoff=%s resolution message=%s status=%s", handoff_id, told.id, status.value)
        await self.hub.queue_changed()
        self.changed(chat.sender_id)
        return Ended(chat, followed_up=False, told=status)

    async def _end(self, chat: Chat, agent_id: int, finish: Callable[..., EndedInCrm]) -> EndedInCrm:
        """Rasa takes the conversation back, then `finish` ends the handoff in the CRM (one transaction)."""
        await self.crm.run(partial(desk.held_chat, handoff_id=chat.handoff_id, agent_id=agent_id))
        try:  # Rasa first: if it cannot take over, the person keeps the chat
            await self.tracker.catch_up(chat.conversation_id)
            await self.rasa.resume(chat.sender_id)
        except (RasaUnavailable, RasaRefused) as error:
            log.warning("resume failed handoff=%s: %s", chat.handoff_id, error)
            raise DeskError(BOT_UNREACHABLE, 503) from None
        try:
            ended = await self.crm.run(finish)
        except (DeskError, SQLAlchemyError):
            await self._pause(chat.sender_id)  # the CRM still says a person is in charge
            raise
        log.info("handoff=%s ended by agent=%s", chat.handoff_id, agent_id)
        return ended

    async def _rating_after(self, chat: Chat) -> bool:
        """Ask how it went, unless the bot's answer left a question open (a form) or a person
        has the conversation again (the customer's last message asked for one)."""
        if await self.crm.run(partial(_handed_off, conversation_id=chat.conversation_id)):
            return False
        try:
            if await self.rasa.active_loop(chat.sender_id) is not None:
                log.info("handback rating deferred handoff=%s: a question is open", chat.handoff_id)
                return False
        except (RasaUnavailable, RasaRefused) as error:
            log.warning("handback follow-up not sent handoff=%s: %s", chat.handoff_id, error)
            return False
        return await self._ask_rating(chat)

    async def _ask_rating(self, chat: Chat) -> bool:
        try:
            replies = await self.rasa.trigger_intent(chat.sender_id, HANDBACK_INTENT, {})
        except (RasaUnavailable, RasaRefused) as error:
            log.warning("handback follow-up not sent handoff=%s: %s", chat.handoff_id, error)
            return False
        stored = await self.crm.run(partial(_store_follow_up, chat=chat, replies=replies))
        statuses = await self.delivery.deliver(chat.channel, stored)
        return all(s != OutboundStatus.FAILED for s in statuses)

    async def _pause(self, sender_id: str) -> None:
        try:
            await self.rasa.pause(sender_id)
        except (RasaUnavailable, RasaRefused) as error:
            # The CRM holds the truth: the next routed message re-pauses if Rasa answers it.
            log.warning("pause failed sender=%s: %s", sender_id, type(error).__name__)

    # ---- background ----------------------------------------------------------------------------

    async def requeue_away(self) -> list[desk.Requeued]:
        """Return chats of agents who went away to the queue; customers and agents are told."""
        requeued = await self.crm.run(partial(_requeue, now=self.clock(), away_seconds=self.away_seconds))
        for item, notice in requeued:
            log.info("handoff=%s back in the queue: agent=%s away", item.chat.handoff_id, item.agent_id)
            await self.delivery.deliver(item.chat.channel, [notice])
            await self.hub.tell_agent(item.agent_id, desk.requeue_notice("you"))
            self.changed(item.chat.sender_id)
        if requeued:
            await self.hub.queue_changed()
        return [item for item, _ in requeued]

    async def call_back_unattended(self) -> list[int]:
        """Nobody has been at the console for a while: waiting customers get a callback promise
        and the bot back, rather than a silent wait for a person who is not coming."""
        now = self.clock()
        waiting = await self.crm.run(
            partial(handoffs.unattended, now=now, unattended_seconds=self.unattended_seconds)
        )
        changed = []
        for handoff_id in waiting:
            async with self._chat(handoff_id) as chat:
                try:  # Rasa first: if it cannot take over, the customer stays in the queue for now
                    await self.rasa.resume(chat.sender_id)
                except (RasaUnavailable, RasaRefused) as error:
                    log.warning("unattended handoff=%s stays queued: %s", handoff_id, type(error).__name__)
                    continue
                notice = await self.crm.run(partial(_to_callback, chat=chat, hours=self.hours, now=now))
                if notice is None:  # a person claimed it meanwhile
                    await self._pause(chat.sender_id)
                    continue
                log.info("handoff=%s unattended: now a callback", handoff_id)
                await self.delivery.deliver(chat.channel, [notice])
                self.changed(chat.sender_id)
                changed.append(handoff_id)
        if changed:
            await self.hub.queue_changed()
        return changed

    async def refresh_queue(self) -> None:
        """Tell consoles when the queue changed elsewhere (e.g. the action server opened a handoff)."""
        if not self.hub.connected:
            self._queue_seen = None
            return
        seen = await self.crm.run(desk.queue_signature)
        if seen != self._queue_seen:
            self._queue_seen = seen
            await self.hub.queue_changed()

    async def run_forever(self) -> None:
        last_sweep = float("-inf")
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_sweep >= self.sweep_seconds:
                    last_sweep = loop.time()
                    await self.requeue_away()
                    await self.call_back_unattended()
                await self.refresh_queue()
            except SQLAlchemyError as error:
                log.warning("desk sweep: CRM unavailable (%s)", type(error).__name__)
            except Exception:  # the loop must outlive any one failure; it is logged, not hidden
                log.exception("desk sweep failed")
            await asyncio.sleep(self.poll_seconds)


def _mark_routed(session: Session, *, message_ids: list[int]) -> None:
    for message_id in message_ids:
        transcript.mark_processed(session=session, message_id=message_id)
        message = session.get_one(Message, message_id)
        message.payload = {**(message.payload or {}), "routed": "agent"}


def _claim(
    session: Session, *, handoff_id: int, agent_id: int, now: datetime
) -> tuple[Chat, Outbound | None]:
    already = desk.chat_of(session=session, handoff_id=handoff_id)
    chat = desk.claim(session=session, handoff_id=handoff_id, agent_id=agent_id, now=now)
    if already.status == HandoffStatus.CLAIMED:  # it was ours already (a second click)
        return chat, None
    agent = session.get_one(Agent, agent_id)
    text = wording.AGENT_JOINED.format(agent=agent.display_name.split()[0])
    return chat, _notice(session, chat, text)


def _notice(session: Session, chat: Chat, text: str) -> Outbound:
    message = transcript.store_outbound(
        session=session,
        conversation_id=chat.conversation_id,
        author=Author.SYSTEM,
        text=text,
        payload={"kind": DESK_NOTICE},
    )
    return Outbound.of(message, chat.sender_id)


def _store_agent_message(session: Session, *, handoff_id: int, agent_id: int, text: str) -> Outbound:
    chat = desk.held_chat(session=session, handoff_id=handoff_id, agent_id=agent_id)
    message = transcript.store_outbound(
        session=session,
        conversation_id=chat.conversation_id,
        author=Author.AGENT,
        text=text,
        agent_id=agent_id,
    )
    return Outbound.of(message, chat.sender_id)


def _resolution_text(raw: str) -> str:
    """The resolution as the customer will read it (as plain text), or a DeskError saying what to fix.

    A close without one is refused: a chat that ends in silence is what a customer leaves over.
    An agent with nothing to tell the customer hands back to the bot instead."""
    text, refusal = screen(raw, desk.MAX_RESOLUTION)
    if refusal is None:
        return text
    if refusal.code == "empty":
        raise DeskError("Write what was resolved before closing: the customer reads it.", 400)
    raise DeskError(f"Keep the resolution under {desk.MAX_RESOLUTION:,} characters.", 400)


def _close_telling(
    session: Session, *, handoff_id: int, agent_id: int, text: str, now: datetime
) -> tuple[Chat, Outbound]:
    """Close the handoff with its resolution and store that resolution as the agent's message to
    the customer, in one transaction: a closed chat always has its closing words queued."""
    chat = desk.finish(
        session=session,
        handoff_id=handoff_id,
        agent_id=agent_id,
        status=HandoffStatus.CLOSED,
        resolution=text,
        now=now,
    )
    message = transcript.store_outbound(
        session=session,
        conversation_id=chat.conversation_id,
        author=Author.AGENT,
        text=text,
        agent_id=agent_id,
        payload={"kind": RESOLUTION, "handoff_id": handoff_id},
    )
    return chat, Outbound.of(message, chat.sender_id)


def _return_to_bot(
    session: Session, *, handoff_id: int, agent_id: int, now: datetime
) -> tuple[Chat, int | None]:
    """Hand the chat back and put the customer's last unanswered message back in the bot's queue
    (its id, or None when the agent or the bot answered everything)."""
    chat = desk.finish(
        session=session, handoff_id=handoff_id, agent_id=agent_id, status=HandoffStatus.RETURNED, now=now
    )
    return chat, _requeue_last_unanswered(session, conversation_id=chat.conversation_id)


def _requeue_last_unanswered(session: Session, *, conversation_id: int) -> int | None:
    """The customer's last message, if it went to the agent and nobody (agent or bot) answered it
    since: marked unanswered again, so the inbox gives it to the bot as a normal message. Rasa's
    tracker holds a paused copy of it already; that copy is marked as one (rasa_client.COPY_KEY)."""
    last = session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.author.in_((Author.CUSTOMER, Author.AGENT, Author.BOT)),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if last is None or last.direction != Direction.INBOUND or (last.payload or {}).get("routed") != "agent":
        return None
    last.delivery_status, last.attempts, last.error = InboundStatus.RECEIVED, 0, None
    last.payload = {**(last.payload or {}), "routed": "bot_after_handback"}
    return last.id


def _handed_off(session: Session, *, conversation_id: int) -> bool:
    return session.get_one(Conversation, conversation_id).status == ConversationStatus.HANDED_OFF


def _follow_up(
    session: Session, *, conversation_id: int, now: datetime, within: timedelta, away_seconds: float
) -> tuple[desk.FollowUp, Outbound] | None:
    item = desk.follow_up_after_close(
        session=session, conversation_id=conversation_id, now=now, within=within, away_seconds=away_seconds
    )
    if item is None:
        return None
    first_name = item.agent.split()[0]
    text = wording.FOLLOW_UP_SAME if item.claimed else wording.FOLLOW_UP_QUEUED
    return item, _notice(session, item.chat, text.format(agent=first_name))


def _store_follow_up(session: Session, *, chat: Chat, replies: list[Any]) -> list[Outbound]:
    conversation = ConversationRef(chat.conversation_id, chat.sender_id, chat.channel, {})
    record_contact(  # a contact like any proactive message: it counts toward the weekly cap
        session=session,
        customer_id=chat.customer_id,
        kind=OutreachKind.HANDBACK,
        key=f"handback:{chat.handoff_id}",
        now=utcnow(),
    )
    return store_bot_replies(
        session, conversation=conversation, replies=replies, extra={"proactive": HANDBACK_INTENT}
    )


def _to_callback(session: Session, *, chat: Chat, hours: BusinessHours, now: datetime) -> Outbound | None:
    handoff = handoffs.to_callback(session=session, handoff_id=chat.handoff_id, hours=hours, now=now)
    if handoff is None:
        return None
    customer = session.get_one(Customer, chat.customer_id)
    when = handoffs.callback_words(
        due=handoff.callback_by or now, customer_zone=customer.timezone, business_zone=hours.zone.key
    )
    return _notice(session, chat, wording.CALLBACK_INSTEAD.format(when=when))


def _requeue(session: Session, *, now: datetime, away_seconds: float) -> list[tuple[desk.Requeued, Outbound]]:
    requeued = desk.requeue_away(session=session, now=now, away_seconds=away_seconds)
    return [(item, _notice(session, item.chat, wording.BACK_IN_QUEUE)) for item in requeued]
