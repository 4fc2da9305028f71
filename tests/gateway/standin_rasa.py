"""A stand-in for the Rasa server at the network boundary: our channel's webhook (which, like
bot/rasa_channel.py, takes a message only with the gateway's shared secret), trigger_intent and the
tracker, with switches for the faults the gateway must survive (errors, slowness)."""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "standin-rasa-token"
CHANNEL_SECRET = "standin-channel-secret"  # the gateway's RASA_CHANNEL_SECRET in tests
CHANNEL_PATH = "/webhooks/gateway/webhook"
SECRET_HEADER = "X-CareLoop-Channel-Secret"
MENU = [
    {"title": "Track my order", "payload": "/check_order_status"},
    {"title": "Talk to a person", "payload": "/request_human"},
]


def default_replies(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`menu` gets buttons, `long` a very long answer, anything else is echoed."""
    message = body["message"]
    if message == "menu":
        return [{"text": "What can I do for you?", "buttons": MENU}]
    if message == "long":
        return [{"text": "\n".join(f"Line {n}: " + "x" * 90 for n in range(100))}]
    if message == "silence":
        return []
    return [{"text": f"You said: {message}"}]


class StandInRasa:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.webhook_calls: list[dict[str, Any]] = []
        self.refused = 0  # messages refused for a missing or wrong channel secret
        self.trigger_calls: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.replies: Callable[[dict[str, Any]], list[dict[str, Any]]] = default_replies
        self.on_message: Callable[[dict[str, Any]], None] | None = None  # runs when a message arrives
        self.status = 200  # anything else: answer with this status and no replies
        self.delay = 0.0  # seconds to think before answering (the tracker already has the answer)
        # A busy Rasa: `workers` turns at a time (one Sanic worker: 1), each taking `think` seconds,
        # the others queue. Like Rasa 3.6 (Sanic cancels the handler of a request whose client
        # hung up), a turn whose caller stopped waiting is dropped and nothing of it is saved.
        self.workers = 0  # 0: no queue, no thinking
        self.think = 0.0
        self.dropped: list[dict[str, Any]] = []  # turns dropped because the caller hung up
        self._capacity: asyncio.Semaphore | None = None
        self.intents = {"EXTERNAL_checkin": [{"text": "Hi again! Is everything fine with your order?"}]}
        self.appended: list[dict[str, Any]] = []  # events posted to trackers: {"sender", "event", …}
        self.paused: set[str] = set()  # a paused conversation answers nothing (Rasa's ConversationPaused)
        self.url = ""  # set once it is served

    @property
    def messages(self) -> list[str]:
        with self.lock:
            return [call["message"] for call in self.webhook_calls]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(CHANNEL_PATH, self.webhook, methods=["POST"]),
                Route("/conversations/{sender:path}/trigger_intent", self.trigger_intent, methods=["POST"]),
                Route("/conversations/{sender:path}/tracker/events", self.append, methods=["POST"]),
                Route("/conversations/{sender:path}/tracker", self.tracker, methods=["GET"]),
                Route("/model/parse", self.parse, methods=["POST"]),
            ]
        )

    async def webhook(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, CHANNEL_SECRET.encode()):
            with self.lock:
                self.refused += 1
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.json()
        if self.on_message is not None:
            await asyncio.to_thread(self.on_message, body)
        if self.status != 200:
            return JSONResponse({"error": "broken"}, status_code=self.status)
        if self.workers:
            turn = asyncio.ensure_future(self._queued_turn())
            hung_up = asyncio.ensure_future(_hung_up(request))
            await asyncio.wait({turn, hung_up}, return_when=asyncio.FIRST_COMPLETED)
            hung_up.cancel()
            if not turn.done():
                turn.cancel()
            await asyncio.gather(turn, hung_up, return_exceptions=True)
            if turn.cancelled():
                with self.lock:
                    self.dropped.append(body)
                return Response(status_code=499)  # nobody reads it
        replies = [{"recipient_id": body["sender"], **r} for r in self.replies(body)]
        if body["sender"] in self.paused:
            replies = []
        with self.lock:
            self.webhook_calls.append(body)
            self.events[body["sender"]].append(
                {"event": "user", "text": body["message"], "metadata": body.get("metadata") or {}}
            )
            for reply in replies:
                data = {k: v for k, v in reply.items() if k not in ("text", "recipient_id")}
                self.events[body["sender"]].append({"event": "bot", "text": reply.get("text"), "data": data})
        await asyncio.sleep(self.delay)
        return JSONResponse(replies)

    async def _queued_turn(self) -> None:
        if self._capacity is None:  # made on the server's own event loop
            self._capacity = asyncio.Semaphore(self.workers)
        async with self._capacity:
            await asyncio.sleep(self.think)

    async def trigger_intent(self, request: Request) -> Response:
        if request.query_params.get("token") != TOKEN:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.status != 200:
            return JSONResponse({"error": "broken"}, status_code=self.status)
        body = await request.json()
        sender = request.path_params["sender"]
        with self.lock:
            self.trigger_calls.append({"sender": sender, **body})
        if body.get("name") not in self.intents:
            return JSONResponse({"message": f"The intent {body.get('name')} does not exist"}, status_code=404)
        messages = [{"recipient_id": sender, **m} for m in self.intents[body["name"]]]
        return JSONResponse({"tracker": {"sender_id": sender}, "messages": messages})

    async def append(self, request: Request) -> Response:
        if request.query_params.get("token") != TOKEN:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.status != 200:
            return JSONResponse({"error": "broken"}, status_code=self.status)
        body = await request.json()
        sender = request.path_params["sender"]
        with self.lock:
            for event in body if isinstance(body, list) else [body]:
                self.appended.append({"sender": sender, **event})
                self.events[sender].append(event)
                if event.get("event") == "pause":
                    self.paused.add(sender)
                elif event.get("event") == "resume":
                    self.paused.discard(sender)
        return JSONResponse({"sender_id": sender, "events": self.events[sender]})

    async def parse(self, request: Request) -> Response:
        """Rasa's NLU reading of a text: here every text is `chitchat`, with full confidence."""
        if request.query_params.get("token") != TOKEN:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.status != 200:
            return JSONResponse({"error": "broken"}, status_code=self.status)
        text = (await request.json()).get("text", "")
        return JSONResponse({"text": text, "intent": {"name": "chitchat", "confidence": 1.0}, "entities": []})

    async def tracker(self, request: Request) -> Response:
        if request.query_params.get("token") != TOKEN:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        with self.lock:
            events = list(self.events.get(request.path_params["sender"], []))
        return JSONResponse({"sender_id": request.path_params["sender"], "events": events})


async def _hung_up(request: Request) -> None:
    """Return when the client closes the connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
