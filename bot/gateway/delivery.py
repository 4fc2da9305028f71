"""Delivery: stored outbound messages handed to their channel's outlet, what happened recorded on
each, and the failed ones tried again.

An outlet that fails in a way nobody foresaw leaves its message queued with the error recorded,
for the retry, instead of failing the work that delivered it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy.orm import Session

from bot.crm import reachability, transcript
from bot.crm.models import Channel, Message, OutboundStatus, utcnow
from bot.gateway.conversations import Conversations
from bot.gateway.outlets import DeliveryResult, Outbound, Outlet
from bot.gateway.store import Crm

log = logging.getLogger(__name__)

OUTBOUND_MAX_ATTEMPTS = 5  # a channel failing this often for passing reasons: the message failed


class Watchers(Protocol):
    """Who watches conversations live (the agent console's sockets)."""

    def changed(self, sender_id: str) -> None:
        """The conversation's transcript changed: whoever watches it refreshes (never waits)."""
        ...


class Delivery:
    def __init__(
        self,
        *,
        crm: Crm,
        outlets: dict[Channel, Outlet],
        conversations: Conversations,
        watchers: Watchers,
        retry_seconds: float,
    ) -> None:
        self.crm, self.outlets, self.conversations = crm, outlets, conversations
        self.watchers, self.retry_seconds = watchers, retry_seconds

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels this gateway runs."""
        return tuple(self.outlets)

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
            self.watchers.changed(sender_id)
        return statuses

    async def typing(self, channel: Channel, sender_id: str, on: bool, who: str = "bot") -> None:
        """Show or clear "<who> is typing" on the customer's channel, if it runs."""
        outlet = self.outlets.get(channel)
        if outlet is not None:
            await outlet.typing(sender_id, on, who=who)

    async def retry(self) -> None:
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


async def _deliver_guarded(outlet: Outlet, message: Outbound, channel: Channel) -> DeliveryResult:
    """The outlet's result; an exception it did not foresee (e.g. a channel answer its client
    library cannot parse) is a failed try, recorded and retried like a network error."""
    try:
        return await outlet.deliver(message)
    except Exception as error:  # the boundary to a channel's library: anything it raises is its failure
        log.exception("outlet failed unexpectedly message=%s channel=%s", message.id, channel.value)
        return DeliveryResult(OutboundStatus.QUEUED, error=f"unexpected {type(error).__name__}: {error}")


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
