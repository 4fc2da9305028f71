"""A real gateway for tests: its own migrated SQLite CRM, served by uvicorn on a free port,
in front of a stand-in Rasa; and a web visitor that talks to it over a real websocket."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.models import Conversation, Message
from bot.gateway.app import Gateway, create_app
from bot.settings import Settings
from standins.servers import ServerThread, free_port
from tests.gateway.standin_rasa import CHANNEL_SECRET, TOKEN

SECRET_KEY = "test-secret-key-0123456789abcdef"
INTERNAL_TOKEN = "test-internal-token-0123456789"


def gateway_settings(var_dir: Path, rasa_url: str, **overrides: str) -> Settings:
    env = {
        "CARELOOP_ENV": "test",
        "CARELOOP_VAR_DIR": str(var_dir),
        "RASA_URL": rasa_url,
        "RASA_TOKEN": TOKEN,
        "RASA_CHANNEL_SECRET": CHANNEL_SECRET,
        "SECRET_KEY": SECRET_KEY,
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_RASA_TIMEOUT": "1.5",
        "GATEWAY_RETRY_SECONDS": "0.5",
        "NLU_REVIEW_DIR": str(var_dir / "nlu-review"),  # never the project's data/nlu/review
        **overrides,
    }
    return Settings.from_env(env)


def copy_crm(template: Path, var_dir: Path) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, var_dir / "crm.db")


class RunningGateway:
    def __init__(self, settings: Settings, server: ServerThread, gateway: Gateway) -> None:
        self.settings, self.server, self.gateway = settings, server, gateway
        self.url = server.url
        self.ws_url = server.url.replace("http", "ws") + "/webchat/ws"
        self.sockets: list[Any] = []

    def crm(self) -> Session:
        return Session(make_engine(self.settings.database_url))

    def new_token(self) -> str:
        response = httpx.post(f"{self.url}/webchat/session", timeout=10)
        response.raise_for_status()
        return str(response.json()["token"])

    def history(self, token: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}/webchat/history", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def messages(self, sender_id: str) -> list[Message]:
        with self.crm() as crm:
            conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conversation is None:
                return []
            return list(
                crm.scalars(
                    select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
                )
            )


@contextmanager
def running_gateway(settings: Settings) -> Iterator[RunningGateway]:
    app = create_app(settings)
    with ServerThread(app, port=settings.gateway_port) as server:
        yield RunningGateway(settings, server, app.state.gateway)


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class WebVisitor:
    """A browser-less visitor: the widget's protocol over a real websocket."""

    def __init__(self, socket: Any, token: str) -> None:
        self.socket, self.token = socket, token
        self.frames: list[dict[str, Any]] = []
        self._seen = 0
        self._count = 0

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.socket.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def say(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        """Send a message; return the gateway's ack or notice for it."""
        self._count += 1
        client_id = client_id or f"c{self._count}-{time.monotonic_ns()}"
        await self.send({"type": "message", "text": text, "client_id": client_id})
        return await self.next(lambda f: f.get("client_id") == client_id and f["type"] in ("ack", "notice"))

    async def click(self, message_id: int, index: int) -> dict[str, Any]:
        self._count += 1
        client_id = f"b{self._count}"
        await self.send({"type": "button", "message_id": message_id, "index": index, "client_id": client_id})
        return await self.next(lambda f: f.get("client_id") == client_id and f["type"] in ("ack", "notice"))

    async def next(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The next frame (not returned before) that `match`es, reading more as needed."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self._seen, len(self.frames)):
                if match(self.frames[index]):
                    frame = self.frames.pop(index)
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; got {self.frames}")
            try:
                raw = await asyncio.wait_for(self.socket.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            self.frames.append(json.loads(raw))

    async def reply(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message from the bot (or the gateway)."""
        frame = await self.next(lambda f: f["type"] == "message", timeout)
        return dict(frame["message"])


async def connect(gateway: RunningGateway, token: str | None = None) -> WebVisitor:
    """Open the websocket and say hello with a (new) visitor token."""
    token = token or await asyncio.to_thread(gateway.new_token)
    socket = await websockets.connect(gateway.ws_url, max_size=2**20)
    gateway.sockets.append(socket)
    visitor = WebVisitor(socket, token)
    await visitor.send({"type": "hello", "token": token})
    await visitor.next(lambda f: f["type"] == "ready")
    return visitor


async def close_sockets(gateway: RunningGateway) -> None:
    """Close the test's websockets while its event loop still runs (a vanished client would make
    the server wait for the closing handshake)."""
    for socket in gateway.sockets:
        await socket.close()
    gateway.sockets.clear()
