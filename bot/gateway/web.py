"""The website chat channel: visitor sessions, history, the websocket, and delivery to live visitors.

A visitor is a server-issued uuid (sender `web:<uuid>`) and a token signed with SECRET_KEY that
proves it; the widget keeps the token in localStorage. History and the websocket need the token,
so one visitor cannot read another's conversation. A shop's logged-in customer is known by the
`external_id` and `user_hash` in the hello (bot.crm.identity): a hash that does not prove the id
leaves the visitor anonymous, and the reason is logged. A token lapses after VISITOR_MAX_AGE unused;
each use hands the widget a renewed one. A visitor has at most MAX_SOCKETS sockets open at once.

Every socket has its own writer task and queue: a socket whose client stops reading is dropped
after SEND_TIMEOUT without holding up any other delivery (its messages stay unconfirmed and are
sent again when the visitor returns)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.crm import identity, transcript
from bot.crm.models import Channel, Direction, Message, OutboundStatus
from bot.gateway import tokens, wording
from bot.gateway.delivery import Delivery, Watchers
from bot.gateway.inbox import Inbox
from bot.gateway.limits import RateLimiter, Verdict
from bot.gateway.outlets import DeliveryResult, Outbound
from bot.gateway.reception import Receipt, Reception
from bot.gateway.sockets import send_frame
from bot.gateway.store import Crm
from bot.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

STATIC_DIR = PROJECT_ROOT / "bot" / "webchat" / "static"
HISTORY_LIMIT = 200
HELLO_TIMEOUT = 10.0
SEND_TIMEOUT = 5.0
QUEUE_LIMIT = 256  # frames waiting for one socket; a client this far behind is not reading
MAX_SOCKETS = 5  # open sockets per visitor (tabs); more are refused
UNAUTHORISED = 4401  # websocket close code: the token is missing, not ours, or expired
TOO_MANY = 4429  # websocket close code: the visitor has MAX_SOCKETS sockets open already


class SocketWriter:
    """One websocket's outgoing frames, written in order by its own task, each within SEND_TIMEOUT."""

    def __init__(self, socket: WebSocket, on_stuck: Callable[[], None]) -> None:
        self.socket, self._on_stuck = socket, on_stuck
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._task = asyncio.get_running_loop().create_task(self._write())
        self.alive = True

    def put(self, frame: dict[str, Any]) -> bool:
        """Queue a frame; False if this socket is gone or too far behind."""
        if not self.alive:
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._give_up("too far behind")
            return False
        return True

    def stop(self) -> None:
        self.alive = False
        self._task.cancel()

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            if not await send_frame(self.socket, frame, timeout=SEND_TIMEOUT):
                self._give_up("not reading")
                return

    def _give_up(self, why: str) -> None:
        if self.alive:
            log.info("web socket dropped: %s", why)
            self.alive = False
            self._on_stuck()


class WebOutlet:
    """Delivers to every open websocket of a visitor (several tabs); absent visitors get theirs
    when they come back."""

    def __init__(self) -> None:
        self._sockets: dict[str, dict[WebSocket, SocketWriter]] = {}

    def connect(self, sender_id: str, socket: WebSocket) -> SocketWriter:
        """Register the socket; its frames go through the writer returned."""
        writer = SocketWriter(socket, lambda: self.disconnect(sender_id, socket))
        self._sockets.setdefault(sender_id, {})[socket] = writer
        return writer

    def disconnect(self, sender_id: str, socket: WebSocket) -> None:
        sockets = self._sockets.get(sender_id, {})
        writer = sockets.pop(socket, None)
        if writer is not None:
            writer.stop()
        if not sockets:
            self._sockets.pop(sender_id, None)

    def connected(self, sender_id: str) -> bool:
        return bool(self._sockets.get(sender_id))

    def socket_count(self, sender_id: str) -> int:
        return len(self._sockets.get(sender_id, ()))

    async def deliver(self, message: Outbound) -> DeliveryResult:
        if await self._push(message.sender_id, {"type": "message", "message": outbound_view(message)}):
            return DeliveryResult(OutboundStatus.SENT)
        return DeliveryResult(OutboundStatus.QUEUED, attempted=False)

    async def typing(self, sender_id: str, on: bool, who: str = "bot") -> None:
        await self._push(sender_id, {"type": "typing", "on": on, "who": who})

    async def notify(self, sender_id: str, code: str, text: str, **extra: Any) -> None:
        await self._push(sender_id, {"type": "notice", "code": code, "text": text, **extra})

    async def _push(self, sender_id: str, frame: dict[str, Any]) -> bool:
        """Queue the frame for each of the visitor's sockets (never waits for one of them)."""
        delivered = False
        for writer in list(self._sockets.get(sender_id, {}).values()):
            delivered = writer.put(frame) or delivered
        return delivered


async def _close(socket: WebSocket, code: int, reason: str | None = None) -> None:
    """Close the socket; a client that already hung up needs no closing (and is no error)."""
    try:
        await socket.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        log.info("web socket client hung up before it was closed code=%s", code)


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
        view["unread"] = message.delivery_status in (OutboundStatus.QUEUED, OutboundStatus.SENT)
    return view


class AgentsWatching(Watchers, Protocol):
    """The agents watching conversations (the console's hub, bot/gateway/desk.py)."""

    async def customer_typing(self, sender_id: str, on: bool) -> None:
        """Show the agents watching the conversation that the customer is typing."""
        ...


class WebChat:
    """The web channel's endpoints."""

    def __init__(
        self,
        *,
        secret_key: str,
        crm: Crm,
        inbox: Inbox,
        delivery: Delivery,
        watchers: AgentsWatching,
        reception: Reception,
        outlet: WebOutlet,
        allowed_origins: Sequence[str],
        identity_secret: str,
    ) -> None:
        self.secret_key, self.crm, self.inbox, self.delivery = secret_key, crm, inbox, delivery
        self.watchers, self.reception, self.outlet = watchers, reception, outlet
        self.identity_secret = identity_secret
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
        visit = tokens.visit_of(self.secret_key, token) if scheme.lower() == "bearer" else None
        if visit is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        messages = await self.crm.run(partial(_history, sender_id=f"web:{visit.visitor_id}"))
        body: dict[str, Any] = {"visitor_id": visit.visitor_id, "messages": messages}
        if visit.renewed:
            body["token"] = visit.renewed
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def socket(self, socket: WebSocket) -> None:
        """One visitor connection: hello with the token, then message frames until it closes."""
        if not self._origin_allowed(socket):
            await _close(socket, 1008)
            return
        await socket.accept()
        hello = await self._hello(socket)
        if hello is None:
            await _close(socket, UNAUTHORISED)
            return
        visit, frame = hello
        sender_id = f"web:{visit.visitor_id}"
        if self.outlet.socket_count(sender_id) >= MAX_SOCKETS:
            log.info("web socket refused: too many open sender=%s", sender_id)
            await send_frame(socket, {"type": "error", "code": "too_many_connections"}, timeout=SEND_TIMEOUT)
            await _close(socket, TOO_MANY, "too many open chat windows")
            return
        writer = self.outlet.connect(sender_id, socket)
        log.info("web socket open sender=%s", sender_id)
        try:
            known = await self._identify(sender_id, frame)
            ready = {"type": "ready", "identity": "verified" if known else "anonymous"}
            writer.put({**ready, **({"token": visit.renewed} if visit.renewed else {})})
            await self._deliver_waiting(sender_id)
            await self._serve(socket, writer, sender_id)
        finally:
            self.outlet.disconnect(sender_id, socket)
            log.info("web socket closed sender=%s", sender_id)

    async def _hello(self, socket: WebSocket) -> tuple[tokens.Visit, dict[str, Any]] | None:
        try:
            frame = _parse(await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT))
        except (asyncio.TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
            return None
        visit = tokens.visit_of(self.secret_key, (frame or {}).get("token"))
        if (frame or {}).get("type") != "hello" or visit is None:
            await send_frame(socket, {"type": "error", "code": "unauthorized"}, timeout=SEND_TIMEOUT)
            return None
        assert frame is not None
        return visit, frame

    async def _identify(self, sender_id: str, hello: dict[str, Any]) -> bool:
        """Attach the visitor to the shop customer the hello names, if its hash proves it."""
        external_id, claimed = hello.get("external_id"), hello.get("user_hash")
        if external_id is None and claimed is None:
            return False  # an anonymous visitor: nothing claimed
        refusal = identity.check_claim(self.identity_secret, external_id, claimed)
        if refusal is not None:
            log.warning("web identity refused sender=%s reason=%s", sender_id, refusal.value)
            return False
        assert isinstance(external_id, str)
        try:
            outcome, customer_id = await self.crm.run(
                partial(identity.attach_web_visitor, sender_id=sender_id, external_id=external_id)
            )
        except SQLAlchemyError:
            log.exception("CRM unavailable: web identity not checked sender=%s", sender_id)
            return False
        if outcome.known:
            log.info("web identity %s sender=%s customer=%s", outcome.value, sender_id, customer_id)
        else:
            log.warning("web identity refused sender=%s reason=%s", sender_id, outcome.value)
        return outcome.known

    async def _deliver_waiting(self, sender_id: str) -> None:
        """Messages queued while the visitor was away (proactive, agent, late answers)."""
        try:
            waiting = await self.crm.run(partial(_waiting, sender_id=sender_id))
        except SQLAlchemyError:
            log.exception("CRM unavailable: waiting messages not delivered sender=%s", sender_id)
            return
        if waiting:
            await self.delivery.deliver(Channel.WEB, waiting)

    async def _serve(self, socket: WebSocket, writer: SocketWriter, sender_id: str) -> None:
        while True:
            event = await socket.receive()
            if event["type"] == "websocket.disconnect":
                return
            frame = _parse(event.get("text"))
            if frame is None:
                writer.put(_notice("invalid", wording.INVALID))
                continue
            await self._handle(writer, sender_id, frame)

    async def _handle(self, writer: SocketWriter, sender_id: str, frame: dict[str, Any]) -> None:
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
            writer.put({"type": "pong"})
            return
        elif kind == "typing" and isinstance(frame.get("on"), bool):
            # shown to the agent of a handed-off conversation
            await self.watchers.customer_typing(sender_id, frame["on"])
            return
        else:
            writer.put(_notice("invalid", wording.INVALID, client_id=client_id))
            return
        self._answer_receipt(writer, receipt, client_id)

    def _answer_receipt(self, writer: SocketWriter, receipt: Receipt, client_id: str | None) -> None:
        if receipt.refusal is not None:
            notice = _notice(receipt.refusal.code, receipt.refusal.text, client_id=client_id)
            writer.put({**notice, "quiet": receipt.quiet})
            return
        accepted = receipt.accepted
        assert accepted is not None
        ack = {"type": "ack", "client_id": client_id, "id": accepted.message_id}
        writer.put({**ack, "at": accepted.created_at.isoformat()})  # queued before any answer
        self.inbox.process_soon(accepted.conversation_id)

    async def _received(self, sender_id: str, ids: list[int]) -> None:
        try:
            await self.crm.run(partial(_mark_delivered, sender_id=sender_id, ids=ids))
        except SQLAlchemyError:
            log.warning("CRM unavailable: delivery receipts dropped sender=%s", sender_id)
            return
        self.watchers.changed(sender_id)  # an agent watching sees "delivered"

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
