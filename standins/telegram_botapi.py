"""A stand-in for Telegram's Bot API at the network boundary, implementing the methods the gateway
uses as https://core.telegram.org/bots/api documents them: getMe, getUpdates (long polling with
offsets), sendMessage (with Telegram's 4096-character limit), sendChatAction, answerCallbackQuery,
setWebhook, deleteWebhook. Failures (429 with retry_after, 403 blocked) can be scripted."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "4242:standin-bot-token"
BOT = {
    "id": 4242,
    "is_bot": True,
    "first_name": "CareLoop",
    "username": "careloop_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
JSON_FIELDS = ("reply_markup", "allowed_updates", "entities")


class StandInBotApi:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any], float]] = []  # (method, parameters, when)
        self.sent: list[dict[str, Any]] = []  # messages Telegram accepted
        self.failures: deque[tuple[int, dict[str, Any]]] = deque()  # scripted sendMessage answers
        self.answers: deque[tuple[int, str]] = deque()  # sendMessage answers sent as they are (status, body)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self.url = ""  # set once it is served

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"])],
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop, self._new_update = asyncio.get_running_loop(), asyncio.Event()
        yield

    # ----- what the test does as "the user" -----

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (from the test's thread)."""
        update = {"update_id": next(self._update_ids), **update}
        with self.lock:
            self._updates.append(update)
        assert self._loop is not None and self._new_update is not None
        self._loop.call_soon_threadsafe(self._new_update.set)
        return update

    def user_writes(self, chat_id: int, text: str, **user: Any) -> dict[str, Any]:
        message = self._message(chat_id, user)
        message["text"] = text
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.push({"message": message})

    def user_sends_location(self, chat_id: int) -> dict[str, Any]:
        message = self._message(chat_id, {})
        message["location"] = {"latitude": 52.52, "longitude": 13.40}
        return self.push({"message": message})

    def user_clicks(self, chat_id: int, sent: dict[str, Any], button: int, **user: Any) -> dict[str, Any]:
        keyboard = sent["reply_markup"]["inline_keyboard"]
        data = [row[0] for row in keyboard][button]["callback_data"]
        query = {
            "id": f"cbq-{next(self._update_ids)}",
            "from": self._user(chat_id, user),
            "message": {**self._bot_message(chat_id, sent["text"]), "message_id": sent["message_id"]},
            "chat_instance": f"ci-{chat_id}",
            "data": data,
        }
        return self.push({"callback_query": query})

    def update_json(self, chat_id: int, text: str) -> dict[str, Any]:
        """An update as Telegram would POST it to a webhook (not queued for getUpdates)."""
        message = self._message(chat_id, {})
        message["text"] = text
        return {"update_id": next(self._update_ids), "message": message}

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [params for name, params, _ in self.calls if name == method]

    def times_of(self, method: str) -> list[float]:
        with self.lock:
            return [when for name, _, when in self.calls if name == method]

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.sent if m["chat_id"] == chat_id]

    def _user(self, chat_id: int, user: dict[str, Any]) -> dict[str, Any]:
        return {"id": chat_id, "is_bot": False, "first_name": "Test", **user}

    def _message(self, chat_id: int, user: dict[str, Any]) -> dict[str, Any]:
        sender = self._user(chat_id, user)
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": sender["first_name"]},
            "from": sender,
        }

    def _bot_message(self, chat_id: int, text: str) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT,
            "text": text,
        }

    # ----- the Bot API -----

    async def endpoint(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _parameters(request)
        method = request.path_params["method"]
        with self.lock:
            self.calls.append((method, params, time.monotonic()))
        if method == "getUpdates":
            return await self._get_updates(params, request)
        handler: Callable[[dict[str, Any]], Awaitable[Response]] | None = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        return await handler(params)

    async def _getMe(self, params: dict[str, Any]) -> Response:
        return _ok(BOT)

    async def _get_updates(self, params: dict[str, Any], request: Request) -> Response:
        """Updates from `offset` on (earlier ones count as confirmed); wait up to `timeout` for one."""
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            with self.lock:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = list(self._updates)
            if ready or time.monotonic() >= deadline or await request.is_disconnected():
                return _ok(ready)
            assert self._new_update is not None
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), 0.2)
            except asyncio.TimeoutError:
                pass

    async def _sendMessage(self, params: dict[str, Any]) -> Response:
        with self.lock:
            failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            status, body = failure
            return JSONResponse({"ok": False, "error_code": status, **body}, status_code=status)
        with self.lock:
            answer = self.answers.popleft() if self.answers else None
        if answer is not None:  # e.g. JSON that python-telegram-bot cannot make sense of
            return Response(answer[1], status_code=answer[0], media_type="application/json")
        text = str(params.get("text", ""))
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        chat_id = int(params["chat_id"])
        message = self._bot_message(chat_id, text)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        with self.lock:
            self.sent.append({**params, "chat_id": chat_id, "message_id": message["message_id"]})
        return _ok(message)

    async def _sendChatAction(self, params: dict[str, Any]) -> Response:
        return _ok(True)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> Response:
        return _ok(True)

    async def _setWebhook(self, params: dict[str, Any]) -> Response:
        return _ok(True)

    async def _deleteWebhook(self, params: dict[str, Any]) -> Response:
        return _ok(True)


def blocked() -> tuple[int, dict[str, Any]]:
    return 403, {"description": "Forbidden: bot was blocked by the user"}


def flood(seconds: int) -> tuple[int, dict[str, Any]]:
    return 429, {
        "description": f"Too Many Requests: retry after {seconds}",
        "parameters": {"retry_after": seconds},
    }


async def _parameters(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()
        return dict(json.loads(body)) if body else {}
    form = await request.form()
    params: dict[str, Any] = {}
    for name, value in form.items():
        params[name] = json.loads(value) if name in JSON_FIELDS and isinstance(value, str) else value
    params.update({k: v for k, v in request.query_params.items() if k not in params})
    return params


def _ok(result: Any) -> Response:
    return JSONResponse({"ok": True, "result": result})


def _error(status: int, description: str) -> Response:
    return JSONResponse({"ok": False, "error_code": status, "description": description}, status_code=status)
