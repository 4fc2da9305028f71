"""The agents' desk in the console: the live queue, claiming, the chat beside the customer's record,
canned replies, internal notes, transfer, close, and hand back to the bot.

Pages are rendered on the server (Jinja, autoescaped); a websocket tells open pages when to
refresh and carries typing both ways. Every change is a POST carrying the session's CSRF token
(form field or X-CSRF-Token header); answers are JSON for the page's script, a redirect otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.console import humane
from bot.console.app import Console
from bot.console.auth import SESSION_COOKIE, ConsoleUser, csrf_ok
from bot.console.confirm import ask, confirmed
from bot.crm import desk as crm_desk
from bot.crm import handoffs, transcript
from bot.crm.desk import DeskError
from bot.crm.labels import label
from bot.crm.models import (
    Agent,
    AgentNote,
    Channel,
    Customer,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    OutboundStatus,
    utcnow,
)
from bot.crm.record import customer_record
from bot.gateway.desk import Desk

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0  # the console refreshes Agent.last_seen_at at least this often
HELLO_TIMEOUT = 10.0
TRANSCRIPT_LIMIT = 200
FORBIDDEN = 4403  # websocket close code: not logged in, no permission, or a foreign page
AUTHOR_LABELS = {"customer": "Customer", "bot": "Bot", "system": "Notice"}
QUEUE_DONE = {  # what the agent's last action did, shown on the queue they land on
    "handed_back": "Handed back to the bot. It answers the customer's last message, then asks how we did.",
    "transferred": "Transferred. Your colleague sees the chat in their queue now.",
    "closed": "Closed. Your resolution was sent to the customer; if they write again soon, it comes back "
    "to you.",
    "closed_waiting": "Closed. Your resolution waits for the customer: they read it when they come back.",
}


def desk_routes(desk: Desk, console: Console) -> list[BaseRoute]:
    """The desk's pages and endpoints, for the console app the gateway mounts."""
    pages = DeskPages(desk, console)
    return [
        Route("/queue", pages.queue, methods=["GET"]),
        Route("/queue.json", pages.queue_json, methods=["GET"]),
        Route("/handoffs/{handoff_id:int}/claim", pages.claim, methods=["POST"]),
        Route("/chats/{handoff_id:int}", pages.chat, methods=["GET"]),
        Route("/chats/{handoff_id:int}/state.json", pages.state, methods=["GET"]),
        Route("/chats/{handoff_id:int}/messages", pages.say, methods=["POST"]),
        Route("/chats/{handoff_id:int}/notes", pages.note, methods=["POST"]),
        Route("/chats/{handoff_id:int}/transfer", pages.transfer, methods=["POST"]),
        Route("/chats/{handoff_id:int}/close", pages.close, methods=["POST"]),
        Route("/chats/{handoff_id:int}/handback", pages.hand_back, methods=["POST"]),
        WebSocketRoute("/ws", pages.socket),
    ]


class DeskPages:
    """The desk's pages read through the console's CRM workers; changes go through the `Desk`,
    which runs them on the customers' lane in order with their messages."""

    def __init__(self, desk: Desk, console: Console) -> None:
        self.desk, self.console = desk, console
        self.zone = (
            desk.hours.zone.key
        )  # the business's: a callback is stated in it when the customer's is unknown

    # ---- pages ---------------------------------------------------------------------------------

    async def queue(self, request: Request) -> Response:
        user = await self._require(request)
        entries = await self.console.crm.run(partial(_queue, now=utcnow(), zone=self.zone))
        done = QUEUE_DONE.get(request.query_params.get("done", ""))
        return self.console.page(request, "desk/queue.html", user, entries=entries, error=None, done=done)

    async def queue_json(self, request: Request) -> Response:
        await self._require(request)
        entries = await self.console.crm.run(partial(_queue, now=utcnow(), zone=self.zone))
        return _json({"entries": entries})

    async def chat(self, request: Request) -> Response:
        user = await self._require(request)
        return await self._chat_page(request, user, error=None)

    async def _chat_page(
        self,
        request: Request,
        user: ConsoleUser,
        error: str | None,
        status: int = 200,
        form: FormData | None = None,
    ) -> Response:
        handoff_id = int(request.path_params["handoff_id"])
        data = await self.console.crm.run(
            partial(
                _chat_page,
                handoff_id=handoff_id,
                agent_id=user.id,
                away=self.desk.away_seconds,
                zone=self.zone,
            )
        )
        if data is None:
            raise HTTPException(404, detail="There is no such handoff.")
        # What the agent wrote is kept when the page comes back with an error (nothing is lost).
        kept = {name: _field(form, name) for name in ("resolution",)} if form is not None else {}
        response = self.console.page(request, "desk/chat.html", user, error=error, kept=kept, **data)
        response.status_code = status
        return response

    async def state(self, request: Request) -> Response:
        user = await self._require(request)
        handoff_id = int(request.path_params["handoff_id"])
        data = await self.console.crm.run(partial(_chat_state, handoff_id=handoff_id, agent_id=user.id))
        if data is None:
            return JSONResponse({"error": "There is no such handoff."}, status_code=404)
        return _json(data)

    # ---- changes -------------------------------------------------------------------------------

    async def claim(self, request: Request) -> Response:
        user, _ = await self._change(request)
        handoff_id = int(request.path_params["handoff_id"])
        try:
            await self.desk.claim(handoff_id, user.id)
        except DeskError as error:
            if _wants_json(request):
                return JSONResponse({"error": error.message}, status_code=error.status)
            entries = await self.console.crm.run(partial(_queue, now=utcnow(), zone=self.zone))
            response = self.console.page(
                request, "desk/queue.html", user, entries=entries, error=error.message
            )
            response.status_code = error.status
            return response
        return self._done(request, f"/chats/{handoff_id}", {"claimed": handoff_id})

    async def say(self, request: Request) -> Response:
        async def send(user: ConsoleUser, form: FormData, handoff_id: int) -> dict[str, Any]:
            said = await self.desk.say(handoff_id, user.id, _field(form, "text"))
            return {"message_id": said.message_id, "status": said.status.value}

        return await self._act(request, send)

    async def note(self, request: Request) -> Response:
        async def write(user: ConsoleUser, form: FormData, handoff_id: int) -> dict[str, Any]:
            await self.desk.note(handoff_id, user.id, _field(form, "text"))
            return {}

        return await self._act(request, write)

    async def transfer(self, request: Request) -> Response:
        async def move(user: ConsoleUser, form: FormData, handoff_id: int) -> dict[str, Any]:
            target = _field(form, "agent_id")
            if not target.isdigit():
                raise DeskError("Choose the agent to transfer to.", 400)
            return {"to": await self.desk.transfer(handoff_id, user.id, int(target))}

        return await self._act(request, move, then="/queue?done=transferred")

    async def close(self, request: Request) -> Response:
        if not _wants_json(request):  # a plain form: ask first (the page's script asks in a dialog)
            user, form = await self._change(request)
            if not confirmed(form):
                return ask(
                    self.console,
                    request,
                    user,
                    question="Close this chat?",
                    consequence=close_consequence(_field(form, "resolution")),
                    yes="Yes, close the chat",
                    back=f"/chats/{int(request.path_params['handoff_id'])}",
                    form=form,
                )

        told: list[OutboundStatus] = []

        async def end(user: ConsoleUser, form: FormData, handoff_id: int) -> dict[str, Any]:
            ended = await self.desk.close(handoff_id, user.id, _field(form, "resolution"))
            told.extend([ended.told] if ended.told else [])
            return {"told": ended.told.value if ended.told else None}

        def then() -> str:
            waiting = told and told[0] == OutboundStatus.QUEUED
            return "/queue?done=closed_waiting" if waiting else "/queue?done=closed"

        return await self._act(request, end, then=then)

    async def hand_back(self, request: Request) -> Response:
        async def give_back(user: ConsoleUser, form: FormData, handoff_id: int) -> dict[str, Any]:
            ended = await self.desk.hand_back(handoff_id, user.id)
            return {"followed_up": ended.followed_up, "answered": ended.answered}

        return await self._act(request, give_back, then="/queue?done=handed_back")

    async def _act(
        self,
        request: Request,
        work: Callable[[ConsoleUser, FormData, int], Awaitable[dict[str, Any]]],
        then: str | Callable[[], str] | None = None,
    ) -> Response:
        user, form = await self._change(request)
        handoff_id = int(request.path_params["handoff_id"])
        try:
            result = await work(user, form, handoff_id)
        except DeskError as error:
            if _wants_json(request):
                return JSONResponse({"error": error.message}, status_code=error.status)
            return await self._chat_page(request, user, error=error.message, status=error.status, form=form)
        path = then() if callable(then) else then
        return self._done(request, path or f"/chats/{handoff_id}", result)

    def _done(self, request: Request, path: str, result: dict[str, Any]) -> Response:
        if _wants_json(request):
            return _json({"ok": True, **result})
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)

    async def _require(self, request: Request) -> ConsoleUser:
        return await self.console.require(request, "chats")

    async def _change(self, request: Request) -> tuple[ConsoleUser, FormData]:
        """The user (allowed chats) and the form of a state-changing request with a valid CSRF token."""
        user = await self._require(request)
        form = await request.form()
        self.console.require_csrf(
            user, request.headers.get("x-csrf-token") or str(form.get("csrf_token", ""))
        )
        return user, form

    # ---- live ----------------------------------------------------------------------------------

    async def socket(self, socket: WebSocket) -> None:
        """Live updates for one console page; its heartbeat keeps the agent counted as present."""
        user = await self.console.user(socket)
        if user is None or not user.may("chats") or not _same_origin(socket):
            await socket.close(code=FORBIDDEN)
            return
        await socket.accept()
        if not await _hello(socket, user):
            await socket.close(code=FORBIDDEN)
            return
        hub = self.desk.hub
        hub.join(socket, user.id)
        heartbeat = asyncio.create_task(self._heartbeat(socket, user.id))
        try:
            await socket.send_text(json.dumps({"type": "ready"}))
            while True:
                frame = _parse(await socket.receive_text())
                await self._on_frame(socket, user, frame)
        except WebSocketDisconnect:
            pass
        finally:
            hub.leave(socket)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _on_frame(self, socket: WebSocket, user: ConsoleUser, frame: dict[str, Any]) -> None:
        handoff_id = frame.get("handoff")
        if frame.get("type") == "watch" and _is_id(handoff_id):
            try:
                chat = await self.console.crm.run(partial(crm_desk.chat_of, handoff_id=handoff_id))
            except DeskError:
                return
            self.desk.hub.watch(socket, chat.sender_id)
        elif frame.get("type") == "typing" and _is_id(handoff_id) and isinstance(frame.get("on"), bool):
            try:
                await self.desk.agent_typing(handoff_id, user.id, frame["on"])
            except DeskError:
                return  # not this agent's chat (any more): nothing to show the customer

    async def _heartbeat(self, socket: WebSocket, agent_id: int) -> None:
        """Every beat: the login must still be alive (logout, expiry, a role change or a password
        reset end it), or the socket is closed; an open tab alone does not count as use."""
        cookie = socket.cookies.get(SESSION_COOKIE)
        while True:
            if await self.console.crm.run(partial(self.console.sessions.read, cookie, touch=False)) is None:
                await socket.close(code=FORBIDDEN)
                return
            await self.console.crm.run(partial(crm_desk.touch_agent, agent_id=agent_id))
            await socket.send_text(json.dumps({"type": "ping"}))
            await asyncio.sleep(HEARTBEAT_SECONDS)


def close_consequence(resolution: str) -> str:
    """What closing does, with the words the customer will read (the page escapes them)."""
    return (
        f"The customer reads, exactly as written: \u201c{resolution.strip()}\u201d. Then the bot answers "
        "them again; the chat leaves the queue and the resolution is recorded. If they write again "
        "soon, it comes back to you."
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _json(data: Any) -> Response:
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _same_origin(socket: WebSocket) -> bool:
    """Only the console's own pages may open it (a foreign page would ride on the cookie)."""
    origin = socket.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == socket.headers.get("host")


async def _hello(socket: WebSocket, user: ConsoleUser) -> bool:
    try:
        frame = _parse(await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT))
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
        return False
    return frame.get("type") == "hello" and csrf_ok(user, frame.get("csrf"))


def _parse(raw: str) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**53


# ---- what the pages show (run on the console's CRM workers) ---------------------------------------


def _queue(session: Session, *, now: datetime, zone: str) -> list[dict[str, Any]]:
    """The open queue as the page shows it: labels, guests named, urgency and priority in words,
    how to reach the customer, and a callback's due time as the customer was promised it."""
    entries = crm_desk.open_queue(session=session, now=now)
    known = _what_is_known(session, entries, zone)
    return [_entry_view(entry, known, now) for entry in entries]


def _what_is_known(
    session: Session, entries: list[crm_desk.QueueEntry], zone: str
) -> dict[int, dict[str, Any]]:
    """Per handoff: the customer's name (if any), whether email and phone are given, the messages so
    far, the routes back to them and the callback promise in the customer's words."""
    if not entries:
        return {}
    customers = {
        c.id: c
        for c in session.scalars(select(Customer).where(Customer.id.in_({e.customer_id for e in entries})))
    }
    counts = dict(
        session.execute(
            select(Message.conversation_id, func.count(Message.id))
            .where(
                Message.conversation_id.in_({e.conversation_id for e in entries}),
                Message.direction == Direction.INBOUND,
            )
            .group_by(Message.conversation_id)
        )
        .tuples()
        .all()
    )
    facts = handoffs.handoff_facts(
        session=session, handoffs=[(e.handoff_id, e.conversation_id) for e in entries]
    )
    known = {}
    for e in entries:
        customer = customers[e.customer_id]
        named = " ".join(p for p in (customer.first_name, customer.last_name) if p)
        known[e.handoff_id] = {
            "name": named,
            "email": bool(customer.email),
            "phone": bool(customer.phone),
            "messages": counts.get(e.conversation_id, 0),
            "facts": facts.get(e.handoff_id, ""),
            "contact": handoffs.contact_routes(
                customer=customer,
                channel=Channel(e.channel),
                given=handoffs.given_contact(session=session, handoff_id=e.handoff_id),
            ),
            "promised": handoffs.callback_words(
                due=e.callback_by, customer_zone=customer.timezone, business_zone=zone
            )
            if e.callback_by
            else None,
        }
    return known


def _entry_view(
    entry: crm_desk.QueueEntry, known: dict[int, dict[str, Any]], now: datetime
) -> dict[str, Any]:
    about = known[entry.handoff_id]
    flag = humane.urgency(
        mode=entry.mode, requested_at=entry.requested_at, callback_by=entry.callback_by, now=now
    )
    return {
        **entry.view(),
        "customer": humane.guest_name(
            name=about["name"],
            channel=entry.channel,
            messages=about["messages"],
            email=about["email"],
            phone=about["phone"],
        ),
        "contact": about["contact"],
        "contact_text": "; ".join(about["contact"]),
        "facts_text": about["facts"],
        "promised": about["promised"],
        "follow_up": entry.reason == handoffs.FOLLOW_UP,
        "segment_label": label(entry.segment, "Segment"),
        "temperament_label": label(entry.temperament, "Temperament"),
        "reason_label": label(entry.reason, "handoff_reason"),
        "mode_label": label(entry.mode, "handoff_mode"),
        "channel_label": label(entry.channel, "Channel"),
        "wait_text": humane.duration(entry.wait_seconds),
        "urgency": flag.level if entry.status == HandoffStatus.QUEUED.value else "",
        "urgency_text": flag.text if entry.status == HandoffStatus.QUEUED.value else "",
        "priority_text": humane.priority_words(
            total=entry.priority,
            segment=entry.segment,
            reason=entry.reason,
            temperament=entry.temperament,
            churn_risk=entry.churn_risk,
        ),
    }


def _chat_page(
    session: Session, *, handoff_id: int, agent_id: int, away: float, zone: str
) -> dict[str, Any] | None:
    state = _chat_state(session, handoff_id=handoff_id, agent_id=agent_id)
    if state is None:
        return None
    handoff = session.get_one(Handoff, handoff_id)
    customer = session.get_one(Customer, handoff.customer_id)
    conversation_channel = crm_desk.chat_of(session=session, handoff_id=handoff_id).channel.value
    targets = [
        a
        for a in crm_desk.present_agents(session=session, now=utcnow(), away_seconds=away)
        if a.id != agent_id
    ]
    return {
        "state": state,
        "handoff": handoff,
        "record": customer_record(
            session=session,
            customer_id=handoff.customer_id,
            conversation_id=handoff.conversation_id,
            handoff_id=handoff.id,
        ),
        "title": humane.guest_name(
            name=" ".join(p for p in (customer.first_name, customer.last_name) if p),
            channel=conversation_channel,
            messages=sum(1 for m in state["messages"] if m["inbound"]),
            email=bool(customer.email),
            phone=bool(customer.phone),
        ),
        "priority_text": humane.priority_words(
            total=handoff.priority,
            segment=customer.segment.value,
            reason=handoff.reason,
            temperament=customer.temperament.value,
            churn_risk=customer.churn_risk or 0.0,
        ),
        "canned": crm_desk.canned_replies(session=session),
        "facts": handoffs.handoff_facts(
            session=session, handoffs=[(handoff.id, handoff.conversation_id)]
        ).get(handoff.id, ""),
        "targets": [{"id": a.id, "name": a.display_name} for a in targets],
        "contact": "; ".join(
            handoffs.contact_routes(
                customer=customer,
                channel=Channel(conversation_channel),
                given=handoffs.given_contact(session=session, handoff_id=handoff.id),
            )
        ),
        "promised": handoffs.callback_words(
            due=handoff.callback_by, customer_zone=customer.timezone, business_zone=zone
        )
        if handoff.callback_by
        else None,
    }


def _chat_state(session: Session, *, handoff_id: int, agent_id: int) -> dict[str, Any] | None:
    """What the chat view shows and refreshes: the handoff, the transcript, notes and events."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        return None
    names = dict(session.execute(select(Agent.id, Agent.display_name)).tuples().all())
    messages = transcript.recent_messages(
        session=session, conversation_id=handoff.conversation_id, limit=TRANSCRIPT_LIMIT
    )
    notes = session.scalars(
        select(AgentNote).where(AgentNote.customer_id == handoff.customer_id).order_by(AgentNote.id)
    )
    return {
        "handoff": {
            "id": handoff.id,
            "status": handoff.status.value,
            "status_label": label(handoff.status),
            "mode": handoff.mode,
            "mode_label": label(handoff.mode, "handoff_mode"),
            "reason": handoff.reason,
            "reason_label": label(handoff.reason, "handoff_reason"),
            "callback_by": handoff.callback_by.isoformat() if handoff.callback_by else None,
            "agent": names.get(handoff.agent_id) if handoff.agent_id else None,
            "mine": handoff.status == HandoffStatus.CLAIMED and handoff.agent_id == agent_id,
            "may_note": crm_desk.may_note(
                session=session,
                chat=crm_desk.chat_of(session=session, handoff_id=handoff_id),
                agent_id=agent_id,
            ),
            "requested_at": handoff.requested_at.isoformat(),
            "resolution": handoff.resolution,
        },
        "messages": [_message_view(m, names, handoff.requested_at) for m in messages],
        "notes": [
            {
                "id": n.id,
                "text": n.text,
                "agent": names.get(n.agent_id or 0, ""),
                "at": n.created_at.isoformat(),
            }
            for n in notes
        ],
        "events": [
            {
                "text": _event_text(e.actor, e.action, e.details, names, handoff),
                "at": e.created_at.isoformat(),
            }
            for e in crm_desk.handoff_events(session=session, handoff_id=handoff_id)
        ],
    }


def _message_view(message: Message, names: dict[int, str], handed_off_at: datetime) -> dict[str, Any]:
    author = message.author.value
    payload = message.payload or {}
    return {
        "id": message.id,
        "author": author,
        "who": names.get(message.agent_id or 0, "Agent") if author == "agent" else AUTHOR_LABELS[author],
        "text": message.text or "",
        "buttons": [str(b.get("title", "")) for b in payload.get("buttons") or []],
        "inbound": message.direction == Direction.INBOUND,
        "status": message.delivery_status.value,
        "status_label": _delivery_words(message),
        "error": message.error,
        "at": message.created_at.isoformat(),
        "before_handoff": message.created_at < handed_off_at,
    }


def _event_text(
    actor: str, action: str, details: dict[str, Any], names: dict[int, str], handoff: Handoff
) -> str:
    if action == crm_desk.REQUEUED:
        return crm_desk.requeue_notice(str(details.get("agent", "an agent")))
    kind, _, number = actor.partition(":")
    by = names.get(int(number), "an agent") if kind == "agent" and number.isdigit() else actor
    texts = {
        "handoff_claimed": f"Claimed by {by}",
        "handoff_transferred": f"Transferred by {by} to {details.get('to', 'another agent')}",
        "handoff_returned": f"Handed back to the bot by {by}",
        "handoff_closed": f"Closed by {by}: {handoff.resolution or ''}",
    }
    return texts.get(action, action.replace("_", " "))


def _delivery_words(message: Message) -> str:
    """Where an outbound message is, in words ("Delivered", "Not delivered: …"); inbound ones say nothing."""
    if message.direction == Direction.INBOUND:
        return ""
    if message.delivery_status == OutboundStatus.FAILED:
        return "Not delivered"
    words = label(message.delivery_status)
    return words[0].upper() + words[1:]
