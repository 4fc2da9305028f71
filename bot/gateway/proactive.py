"""The internal API (scheduler, agent console): proactive messages through Rasa's trigger_intent,
and Telegram deep links that attach a chat to a customer. Bearer INTERNAL_API_TOKEN only.

Every proactive send takes its place in the customer's weekly cap before Rasa is asked
(scheduler/policy.py `reserve_contact`): a caller other than the scheduler cannot go past the
cap either (429 frequency_cap), and a send that fails gives its place back."""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.crm import reachability, transcript
from bot.crm.models import Channel, Conversation, Customer, Message, utcnow
from bot.crm.queries import InvalidSenderId, ensure_conversation, find_identity, parse_sender_id
from bot.gateway import tokens
from bot.gateway.conversations import Conversations
from bot.gateway.delivery import Delivery
from bot.gateway.inbound import ConversationRef
from bot.gateway.inbox_crm import conversation_ref, store_bot_replies
from bot.gateway.outlets import Outbound
from bot.gateway.rasa_client import RasaClient, RasaRefused, RasaUnavailable, Reply
from bot.gateway.store import Crm
from scheduler.policy import FrequencyCap, release_contact, reserve_contact

log = logging.getLogger(__name__)

INTENT = re.compile(r"^EXTERNAL_[A-Za-z0-9_]{1,60}$")
MAX_BODY = 16_384


class BadRequest(ValueError):
    """The request is malformed; the message says how."""


class NotReachable(LookupError):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status, self.code = status, code


@dataclass(frozen=True)
class ProactiveRequest:
    customer_id: int | None
    sender_id: str | None
    intent: str
    entities: dict[str, Any]
    idempotency_key: str | None

    @classmethod
    def parse(cls, body: object) -> ProactiveRequest:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        customer_id, sender_id = body.get("customer_id"), body.get("sender_id")
        if (customer_id is None) == (sender_id is None):
            raise BadRequest("give exactly one of customer_id and sender_id")
        if customer_id is not None and (not isinstance(customer_id, int) or isinstance(customer_id, bool)):
            raise BadRequest("customer_id must be an integer")
        if sender_id is not None and not isinstance(sender_id, str):
            raise BadRequest("sender_id must be a string like telegram:123 or web:<uuid>")
        intent = body.get("intent")
        if not isinstance(intent, str) or not INTENT.match(intent):
            raise BadRequest("intent must be an EXTERNAL_* intent")
        entities = body.get("entities", {})
        if not isinstance(entities, dict) or not all(isinstance(k, str) for k in entities):
            raise BadRequest("entities must be an object")
        key = body.get("idempotency_key")
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 160 and key.isprintable()):
            raise BadRequest("idempotency_key must be a string of 1-160 printable characters")
        return cls(customer_id, sender_id, intent, entities, key)


class InternalApi:
    def __init__(
        self,
        *,
        token: str,
        secret_key: str,
        crm: Crm,
        rasa: RasaClient,
        delivery: Delivery,
        conversations: Conversations,
        weekly_cap: int,
        telegram_username: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._token, self._secret_key = token.encode(), secret_key
        self.crm, self.rasa, self.delivery = crm, rasa, delivery
        self.conversations, self.weekly_cap = conversations, weekly_cap
        self.channels = delivery.channels  # the channels this gateway runs
        self.telegram_username = telegram_username  # the bot's @name once Telegram is connected

    def authorised(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    async def proactive(self, request: Request) -> Response:
        """POST /internal/proactive: trigger an EXTERNAL_* intent and deliver the bot's messages."""
        if not self.authorised(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            ask = ProactiveRequest.parse(await read_json(request))
        except BadRequest as error:
            return JSONResponse({"error": "bad_request", "detail": str(error)}, status_code=400)
        try:
            return JSONResponse(
                await self.send(ask, actor=request.headers.get("x-careloop-actor", "internal"))
            )
        except NotReachable as error:
            return JSONResponse({"error": error.code}, status_code=error.status)
        except FrequencyCap:
            return JSONResponse({"error": "frequency_cap"}, status_code=429)
        except RasaUnavailable:
            return JSONResponse({"error": "rasa_unavailable"}, status_code=503)
        except RasaRefused as error:
            return JSONResponse({"error": "rasa_refused", "detail": error.detail}, status_code=422)
        except SQLAlchemyError:
            log.exception("CRM unavailable: proactive request not handled")
            return JSONResponse({"error": "crm_unavailable"}, status_code=503)
        except Exception:  # the caller gets an answer it can read and retry on, not a bare 500
            log.exception("proactive request failed unexpectedly")
            return JSONResponse({"error": "internal_error"}, status_code=500)

    async def send(self, ask: ProactiveRequest, *, actor: str = "internal") -> dict[str, Any]:
        customer_id = await self.crm.run(partial(_customer_of, ask=ask))
        async with self.conversations.hold_customer(customer_id):
            if ask.idempotency_key is not None:
                earlier = await self.crm.run(
                    partial(_earlier_result, customer_id=customer_id, key=ask.idempotency_key)
                )
                if earlier is not None:
                    log.info("proactive replayed customer=%s intent=%s", customer_id, ask.intent)
                    return {**earlier, "replayed": True}
            conversation = await self.crm.run(
                partial(_conversation_for, ask=ask, customer_id=customer_id, channels=self.channels)
            )
            reserved = await self.crm.run(
                partial(_reserve, customer_id=customer_id, ask=ask, weekly_cap=self.weekly_cap)
            )
            async with self.conversations.hold(conversation.id):
                try:
                    replies = await self.rasa.trigger_intent(conversation.sender_id, ask.intent, ask.entities)
                except (RasaUnavailable, RasaRefused) as error:
                    if reserved is not None:
                        await self.crm.run(partial(release_contact, delivery_id=reserved, error=str(error)))
                    raise
                stored = await self.crm.run(
                    partial(
                        _store,
                        conversation=conversation,
                        customer_id=customer_id,
                        replies=replies,
                        ask=ask,
                        actor=actor,
                    )
                )
                statuses = await self.delivery.deliver(conversation.channel, stored)
        log.info(
            "proactive sent customer=%s conversation=%s intent=%s messages=%s",
            customer_id,
            conversation.id,
            ask.intent,
            [m.id for m in stored],
        )
        return {
            "customer_id": customer_id,
            "sender_id": conversation.sender_id,
            "messages": [{"id": m.id, "status": s.value} for m, s in zip(stored, statuses, strict=True)],
            "replayed": False,
        }

    async def telegram_link(self, request: Request) -> Response:
        """POST /internal/telegram-link {"customer_id"}: a t.me link that attaches a chat to them."""
        if not self.authorised(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            body = await read_json(request)
        except BadRequest as error:
            return JSONResponse({"error": "bad_request", "detail": str(error)}, status_code=400)
        customer_id = body.get("customer_id") if isinstance(body, dict) else None
        if not isinstance(customer_id, int) or isinstance(customer_id, bool):
            return JSONResponse({"error": "bad_request", "detail": "customer_id must be an integer"}, 400)
        username = self.telegram_username()
        if username is None:
            return JSONResponse({"error": "telegram_not_running"}, status_code=409)
        if not await self.crm.run(lambda session: session.get(Customer, customer_id) is not None):
            return JSONResponse({"error": "unknown_customer"}, status_code=404)
        payload = tokens.link_payload(self._secret_key, customer_id)
        return JSONResponse({"url": f"https://t.me/{username}?start={payload}", "payload": payload})


async def read_json(request: Request, limit: int = MAX_BODY) -> object:
    """The request's JSON body, refusing bodies over `limit` bytes before reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is larger than {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the body is larger than {limit} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None


def _customer_of(session: Session, *, ask: ProactiveRequest) -> int:
    if ask.customer_id is not None:
        customer = session.get(Customer, ask.customer_id)
        if customer is None or customer.erased_at is not None:
            raise NotReachable(404, "unknown_customer")
        return customer.id
    try:
        identity = find_identity(session=session, sender_id=ask.sender_id or "")
    except InvalidSenderId:
        raise NotReachable(400, "invalid_sender_id") from None
    if identity is None:
        raise NotReachable(404, "unknown_sender_id")
    return identity.customer_id


def _reserve(session: Session, *, customer_id: int, ask: ProactiveRequest, weekly_cap: int) -> int | None:
    return reserve_contact(
        session=session,
        customer_id=customer_id,
        intent=ask.intent,
        key=ask.idempotency_key,
        now=utcnow(),
        weekly_cap=weekly_cap,
    )


def _conversation_for(
    session: Session, *, ask: ProactiveRequest, customer_id: int, channels: Sequence[Channel]
) -> ConversationRef:
    """The conversation to reach the customer in: the one asked for, or their most recent
    reachable identity on a channel this gateway runs."""
    if ask.sender_id is not None:
        identity = find_identity(session=session, sender_id=ask.sender_id)
        channel, _ = parse_sender_id(ask.sender_id)
        if identity is None or not identity.reachable or channel not in channels:
            raise NotReachable(409, "unreachable")
    else:
        identity = reachability.best_identity(session=session, customer_id=customer_id, channels=channels)
        if identity is None:
            raise NotReachable(409, "unreachable")
    customer = session.get_one(Customer, customer_id)
    conversation = ensure_conversation(session=session, sender_id=identity.sender_id, customer=customer)
    return conversation_ref(session, conversation)


def _store(
    session: Session,
    *,
    conversation: ConversationRef,
    customer_id: int,
    replies: list[Reply],
    ask: ProactiveRequest,
    actor: str,
) -> list[Outbound]:
    stored = store_bot_replies(
        session, conversation=conversation, replies=replies, extra={"proactive": ask.intent}
    )
    transcript.record_proactive(
        session=session,
        customer_id=customer_id,
        conversation_id=conversation.id,
        intent=ask.intent,
        idempotency_key=ask.idempotency_key,
        message_ids=[m.id for m in stored],
        actor=actor[:60],
    )
    return stored


def _earlier_result(session: Session, *, customer_id: int, key: str) -> dict[str, Any] | None:
    earlier = transcript.proactive_result(session=session, customer_id=customer_id, idempotency_key=key)
    if earlier is None:
        return None
    ids = [int(i) for i in earlier.get("message_ids", [])]
    rows = session.execute(select(Message.id, Message.delivery_status).where(Message.id.in_(ids))).all()
    status: dict[int, str] = {row[0]: str(row[1]) for row in rows}  # the stored value, as the API said
    conversation = session.get(Conversation, earlier.get("conversation_id"))
    return {
        "customer_id": customer_id,
        "sender_id": conversation.sender_id if conversation else None,
        "messages": [{"id": i, "status": status[i]} for i in ids if i in status],
    }
