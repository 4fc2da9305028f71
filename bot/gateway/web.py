"""The website chat channel: visitor sessions, history, the websocket, and delivery to live visitors.

A visitor is a server-issued uuid (sender `web:<uuid>`) and a token signed with SECRET_KEY that
proves it; the widget keeps the token in localStorage. History and the websocket need the token,
so one visitor cannot read another's conversation."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bot.crm import transcript
from bot.crm.models import Channel, DeliveryStatus, Direction, Message
from bot.gateway import tokens, wording
from bot.gateway.inbox import Inbox
from bot.gateway.limits import RateLimiter, Verdict
from bot.gateway.outlets import DeliveryResult, Outbound
from bot.gateway.reception import Receipt, Reception
from bot.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

STATIC_DIR = PROJECT_ROOT / "bot" / "webchat" / "static"
HISTORY_LIMIT = 200
HELLO_TIMEOUT = 10.0
SEND_TIMEOUT = 5.0
UNAUTHORISED = 4401  # websocket close code: the token is missing or not ours


class WebOutlet:
    """Delivers to every open websocket of a visitor (several tabs); absent visitors get theirs
    when they come back."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocket]] = {}

    def connect(self, sender_id: str, socket: WebSocket) -> None:
        self._sockets.setdefault(sender_id, set()).add(socket)

    def disconnect(self, sender_id: str, socket: WebSocket) -> None:
        sockets = self._sockets.get(sender_id, set())
        sockets.discard(socket)
        if not sockets:
            self._sockets.pop(sender_id, None)

    def connected(self, sender_id: str) -> bool:
        return bool(self._sockets.get(sender_id))

    async def deliver(self, message: Outbound) -> DeliveryResult:
        if await self._push(message.sender_id, {"type": "message", "message": outbound_view(message)}):
            return DeliveryResult(DeliveryStatus.SENT)
        return DeliveryResult(DeliveryStatus.QUEUED, attempted=False)

    async def typing(self, sender_id: str, on: bool, who: str = "bot") -> None:
        await self._push(sender_id, {"type": "typing", "on": on, "who": who})

    async def notify(self, sender_id: str, code: str, text: str, **extra: Any) -> None:
        await self._push(sender_id, {"type": "notice", "code": code, "text": text, **extra})

    async def _push(self, sender_id: str, frame: dict[str, Any]) -> bool:
        delivered = False
        for socket in list(self._sockets.get(sender_id, ())):
            if await send_frame(socket, frame):
                delivered = True
            else:
                self.disconnect(sender_id, socket)
        return delivered


async def send_frame(socket: WebSocket, frame: dict[str, Any]) -> bool:
    """Send one JSON frame; False if the socket is gone or stuck."""
    if socket.application_state != WebSocketState.CONNECTED:
        return False
    try:
        await asyncio.wait_for(socket.send_text(json.dumps(frame)), SEND_TIMEOUT)
    except (WebSocketDisconnect, RuntimeError, OSError, asyncio.TimeoutError):
        return False
    return True


def outbound_view(message: Outbound) -> dict[str, Any]:
    return {
        "id": message.id,
        "author": message.author,
        "text": message.text,
        "buttons": [{"title": title} for title in message.buttons],
        "image": message.image,
        "at": message.created_at.isoformat(),
    }


def history_view(message: Message) -> dict[str, Any]:
    payload = message.payload or {}
    view: dict[str, Any] = {
        "id": message.id,
        "author": message.author.value,
        "text": message.text,
        "buttons": [{"title": str(b.get("title", ""))} for b in payload.get("buttons") or []],
        "image": payload.get("image"),
        "at": message.created_at.isoformat(),
    }
    if message.direction == Direction.INBOUND:
        view["client_id"] = message.external_id
    else:
        view["unread"] = message.delivery_status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT)
    return view


class WebChat:
    """The web channel's endpoints."""

    def __init__(
        self,
        *,
        secret_key: str,
        inbox: Inbox,
        reception: Reception,
        outlet: WebOutlet,
        allowed_origins: Sequence[str],
    ) -> None:
        self.secret_key, self.inbox, self.reception, self.outlet = secret_key, inbox, reception, outlet
        self.allowed_origins = tuple(allowed_origins)
        self.session_limiter = RateLimiter(30)  # new visitor sessions per client address per minute

    def app(self) -> ASGIApp:
        """Mounted at /webchat: the API, the websocket, and the widget's files (CORS for any embedder)."""
        router = Router(
            routes=[
                Route("/session", self.new_session, methods=["POST"]),
                Route("/history", self.history, methods=["GET"]),
                WebSocketRoute("/ws", self.socket),
                Mount("/", StaticFiles(directory=STATIC_DIR)),
            ]
        )
        return CORSMiddleware(
            router,
            allow_origins=list(self.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    async def new_session(self, request: Request) -> Response:
        """Issue a new visitor id and its token."""
        client = request.client.host if request.client else "unknown"
        if self.session_limiter.check(client) != Verdict.ALLOW:
            return JSONResponse({"error": "rate_limited"}, status_code=429)
        visitor_id, token = tokens.new_visitor(self.secret_key)
        log.info("web visitor created visitor=%s", visitor_id)
        return JSONResponse({"visitor_id": visitor_id, "token": token})

    async def history(self, request: Request) -> Response:
        """The visitor's conversation so far (the widget shows it after a reload)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        visitor_id = tokens.visitor_of(self.secret_key, token) if scheme.lower() == "bearer" else None
        if visitor_id is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        messages = await self.inbox.crm.run(partial(_history, sender_id=f"web:{visitor_id}"))
        return JSONResponse(
            {"visitor_id": visitor_id, "messages": messages}, headers={"Cache-Control": "no-store"}
        )

    async def socket(self, socket: WebSocket) -> None:
        """One visitor connection: hello with the token, then message frames until it closes."""
        if not self._origin_allowed(socket):
            await socket.close(code=1008)
            return
        await socket.accept()
        sender_id = await self._hello(socket)
        if sender_id is None:
            await socket.close(code=UNAUTHORISED)
            return
        self.outlet.connect(sender_id, socket)
        log.info("web socket open sender=%s", sender_id)
        try:
            await send_frame(socket, {"type": "ready"})
            await self._deliver_waiting(sender_id)
            await self._serve(socket, sender_id)
        finally:
            self.outlet.disconnect(sender_id, socket)
            log.info("web socket closed sender=%s", sender_id)

    async def _hello(self, socket: WebSocket) -> str | None:
        try:
            frame = _parse(await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT))
        except (asyncio.TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
            return None
        visitor_id = tokens.visitor_of(self.secret_key, (frame or {}).get("token"))
        if (frame or {}).get("type") != "hello" or visitor_id is None:
            await send_frame(socket, {"type": "error", "code": "unauthorized"})
            return None
        return f"web:{visitor_id}"

    async def _deliver_waiting(self, sender_id: str) -> None:
        """Messages queued while the visitor was away (proactive, agent, late answers)."""
        try:
            waiting = await self.inbox.crm.run(partial(_waiting, sender_id=sender_id))
        except SQLAlchemyError:
            log.exception("CRM unavailable: waiting messages not delivered sender=%s", sender_id)
            return
        if waiting:
            await self.inbox.deliver(Channel.WEB, waiting)

    async def _serve(self, socket: WebSocket, sender_id: str) -> None:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                return
            frame = _parse(event.get("text"))
            if frame is None:
                await send_frame(socket, _notice("invalid", wording.INVALID))
                continue
            await self._handle(socket, sender_id, frame)

    async def _handle(self, socket: WebSocket, sender_id: str, frame: dict[str, Any]) -> None:
        kind, client_id = frame.get("type"), _client_id(frame.get("client_id"))
        if kind == "message" and isinstance(frame.get("text"), str):
            receipt = await self.reception.text(sender_id, frame["text"], external_id=client_id)
        elif kind == "button" and _is_int(frame.get("message_id")) and _is_int(frame.get("index")):
            receipt = await self.reception.button(
                sender_id, frame["message_id"], frame["index"], external_id=client_id
            )
        elif kind == "received" and isinstance(frame.get("ids"), list):
            await self._received(sender_id, [i for i in frame["ids"][:HISTORY_LIMIT] if _is_int(i)])
            return
        elif kind == "ping":
            await send_frame(socket, {"type": "pong"})
            return
        elif kind == "typing" and isinstance(frame.get("on"), bool):
            if self.inbox.desk is not None:  # shown to the agent of a handed-off conversation
                await self.inbox.desk.customer_typing(sender_id, frame["on"])
            return
        else:
            await send_frame(socket, _notice("invalid", wording.INVALID, client_id=client_id))
            return
        await self._answer_receipt(socket, receipt, client_id)

    async def _answer_receipt(self, socket: WebSocket, receipt: Receipt, client_id: str | None) -> None:
        if receipt.refusal is not None:
            notice = _notice(receipt.refusal.code, receipt.refusal.text, client_id=client_id)
            await send_frame(socket, {**notice, "quiet": receipt.quiet})
            return
        accepted = receipt.accepted
        assert accepted is not None
        ack = {"type": "ack", "client_id": client_id, "id": accepted.message_id}
        await send_frame(socket, {**ack, "at": accepted.created_at.isoformat()})
        self.inbox.process_soon(accepted.conversation_id)

    async def _received(self, sender_id: str, ids: list[int]) -> None:
        try:
            await self.inbox.crm.run(partial(_mark_delivered, sender_id=sender_id, ids=ids))
        except SQLAlchemyError:
            log.warning("CRM unavailable: delivery receipts dropped sender=%s", sender_id)
            return
        self.inbox.changed(sender_id)  # an agent watching sees "delivered"

    def _origin_allowed(self, socket: WebSocket) -> bool:
        origin = socket.headers.get("origin")
        if origin is None or "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins:
            return True
        return urlsplit(origin).netloc == socket.headers.get("host")  # the gateway's own pages


def _parse(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, str):
        return None
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _notice(code: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "notice", "code": code, "text": text, **extra}


def _client_id(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _history(session: Session, *, sender_id: str) -> list[dict[str, Any]]:
    conversation = transcript.find_conversation(session=session, sender_id=sender_id)
    if conversation is None:
        return []
    messages = transcript.recent_messages(
        session=session, conversation_id=conversation.id, limit=HISTORY_LIMIT
    )
    return [history_view(m) for m in messages if m.text or (m.payload or {}).get("buttons")]


def _waiting(session: Session, *, sender_id: str) -> list[Outbound]:
    conversation = transcript.find_conversation(session=session, sender_id=sender_id)
    if conversation is None:
        return []
    return [
        Outbound.of(m, sender_id)
        for m in transcript.undelivered_outbound(
            session=session, conversation_id=conversation.id, unconfirmed=True
        )
    ]


def _mark_delivered(session: Session, *, sender_id: str, ids: list[int]) -> int:
    conversation = transcript.find_conversation(session=session, sender_id=sender_id)
    if conversation is None:
        return 0
    return transcript.mark_delivered(session=session, conversation_id=conversation.id, message_ids=ids)
