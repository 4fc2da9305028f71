"""The door every customer message passes, whatever the channel: hygiene, rate limit, storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.crm import transcript
from bot.crm.queries import InvalidSenderId
from bot.crm.transcript import Profile
from bot.gateway import wording
from bot.gateway.inbound import Accepted, Inbound
from bot.gateway.inbox import Inbox
from bot.gateway.limits import RateLimiter, Refusal, Verdict, for_rasa, names_external_intent, screen
from bot.gateway.store import Crm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """Either the message was stored (`accepted`), or it was refused; `quiet`: say nothing."""

    accepted: Accepted | None = None
    refusal: Refusal | None = None
    quiet: bool = False


class Reception:
    def __init__(self, inbox: Inbox, *, crm: Crm, max_chars: int, per_minute: int) -> None:
        self.inbox, self.crm = inbox, crm
        self.max_chars = max_chars
        self.limiter = RateLimiter(per_minute)

    async def text(
        self, sender_id: str, raw: str, *, external_id: str | None = None, profile: Profile | None = None
    ) -> Receipt:
        """A typed message."""
        text, refusal = screen(raw, self.max_chars)
        if refusal is None and not for_rasa(text):  # only slashes: no words, and no command either
            refusal = Refusal("empty", wording.EMPTY)
        if refusal is not None:
            log.info("inbound refused sender=%s reason=%s", sender_id, refusal.code)
            return Receipt(refusal=refusal)
        return await self._accept(Inbound(sender_id, text, external_id=external_id, profile=profile))

    async def button(
        self,
        sender_id: str,
        message_id: int,
        index: int,
        *,
        external_id: str | None = None,
        profile: Profile | None = None,
    ) -> Receipt:
        """A click on button `index` of the bot's message `message_id`: its title is what the
        customer said, its payload is what Rasa gets. Only live buttons the bot offered in this
        conversation count (`transcript.offered_button`), and none naming an `EXTERNAL_*` intent:
        those are the scheduler's, whatever a reply happened to offer."""
        try:
            button = await self.crm.run(
                partial(_offered_button, sender_id=sender_id, message_id=message_id, index=index)
            )
        except SQLAlchemyError:
            log.exception("CRM unavailable resolving a button sender=%s", sender_id)
            return Receipt(refusal=Refusal("unavailable", wording.UNAVAILABLE))
        if button is None:
            return Receipt(refusal=Refusal("stale_button", wording.STALE_BUTTON))
        if names_external_intent(button["payload"]):
            log.warning(
                "button naming an external intent refused sender=%s message=%s", sender_id, message_id
            )
            return Receipt(refusal=Refusal("stale_button", wording.STALE_BUTTON))
        payload = {"kind": "button", "rasa_text": button["payload"], "reply_to": message_id, "index": index}
        title = button["title"][: self.max_chars] or button["payload"]
        return await self._accept(
            Inbound(sender_id, title, payload=payload, external_id=external_id, profile=profile)
        )

    async def command(
        self, sender_id: str, shown: str, rasa_text: str, *, external_id: str | None, profile: Profile | None
    ) -> Receipt:
        """A channel command the gateway translates (Telegram's /start means hello)."""
        payload = {"kind": "command", "rasa_text": rasa_text}
        return await self._accept(
            Inbound(sender_id, shown, payload=payload, external_id=external_id, profile=profile)
        )

    async def _accept(self, inbound: Inbound) -> Receipt:
        verdict = self.limiter.check(inbound.sender_id)
        if verdict != Verdict.ALLOW:
            log.info("inbound refused sender=%s reason=rate_limited", inbound.sender_id)
            return Receipt(
                refusal=Refusal("rate_limited", wording.RATE_LIMITED), quiet=verdict == Verdict.REFUSE_QUIETLY
            )
        try:
            return Receipt(accepted=await self.inbox.accept(inbound))
        except InvalidSenderId:
            return Receipt(refusal=Refusal("invalid", wording.INVALID))
        except SQLAlchemyError:
            log.exception("CRM unavailable: message not stored sender=%s", inbound.sender_id)
            return Receipt(refusal=Refusal("unavailable", wording.UNAVAILABLE))


def _offered_button(
    session: Session, *, sender_id: str, message_id: int, index: int
) -> dict[str, str] | None:
    conversation = transcript.find_conversation(session=session, sender_id=sender_id)
    if conversation is None:
        return None
    return transcript.offered_button(
        session=session, conversation_id=conversation.id, message_id=message_id, index=index
    )
