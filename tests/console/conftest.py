"""Fixtures for the agents' desk: a real gateway (stand-in Rasa behind it) with console users, a
logged-in console client per user, and a web customer whose conversation was handed to a person."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from bot.crm.models import (
    HANDOFF_LIVE,
    Agent,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    Role,
    utcnow,
)
from bot.crm.passwords import hash_password
from bot.gateway.tokens import visitor_of
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import (
    SECRET_KEY,
    RunningGateway,
    WebVisitor,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
)
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["crm_template", "desk_gateway", "rasa"]

USERS = {  # username: (display name, role)
    "alex": ("Alex Agent", Role.AGENT),
    "sam": ("Sam Second", Role.AGENT),
    "mo": ("Mo Marketer", Role.MARKETER),
    "ada": ("Ada Admin", Role.ADMIN),
}
HANDBACK = [
    {"text": "Thanks for your patience — I'm back with you."},
    {
        "text": "How did we do?",
        "buttons": [{"title": str(n), "payload": f'/rate{{"rating": "{n}"}}'} for n in (1, 5)],
    },
]


@cache
def _password_hash(username: str) -> str:
    return hash_password(f"{username}-pw")


@contextmanager
def desk_stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    """A real gateway with console users alex, sam (agents), mo (marketer) and ada (admin)."""
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url)
    rasa.intents["EXTERNAL_handback"] = HANDBACK
    with running_gateway(settings) as running:
        with running.crm() as crm:
            for username, (name, role) in USERS.items():
                crm.add(
                    Agent(
                        username=username,
                        display_name=name,
                        role=role,
                        password_hash=_password_hash(username),
                    )
                )
            crm.commit()
        yield running


@pytest.fixture
async def desk_gateway(
    tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> AsyncIterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running
        await close_sockets(running)


class ConsoleClient:
    """One browser-less console user: logs in, reads pages, posts with the session's CSRF token."""

    def __init__(self, gateway: RunningGateway, username: str) -> None:
        self.gateway, self.username = gateway, username
        self.http = httpx.Client(base_url=f"{gateway.url}/console", follow_redirects=False, timeout=15)
        self.csrf = ""

    def login(self) -> ConsoleClient:
        page = self.http.get("/login")
        token = _csrf_in(page.text)
        response = self.http.post(
            "/login", data={"username": self.username, "password": f"{self.username}-pw", "csrf_token": token}
        )
        assert response.status_code == 303, response.text
        self.csrf = _csrf_in(self.http.get("/").text)
        return self

    def post(
        self, path: str, data: dict[str, str] | None = None, *, as_json: bool = True, csrf: str | None = None
    ) -> httpx.Response:
        headers = {"Accept": "application/json"} if as_json else {}
        form = {"csrf_token": self.csrf if csrf is None else csrf, **(data or {})}
        return self.http.post(path, data=form, headers=headers)

    def state(self, handoff_id: int) -> dict[str, Any]:
        response = self.http.get(f"/chats/{handoff_id}/state.json")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    async def socket(self, origin: str | None = None) -> Any:
        """The console's websocket, said hello to; the caller closes it."""
        url = self.gateway.url.replace("http", "ws") + "/console/ws"
        socket = await websockets.connect(
            url, extra_headers={"Cookie": self.cookie_header(), "Origin": origin or self.gateway.url}
        )
        self.gateway.sockets.append(socket)
        await socket.send(json.dumps({"type": "hello", "csrf": self.csrf}))
        return socket

    def close(self) -> None:
        self.http.close()


def _csrf_in(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def console(desk_gateway: RunningGateway) -> Iterator[dict[str, ConsoleClient]]:
    """A logged-in client for every console user, by username."""
    clients = {username: ConsoleClient(desk_gateway, username).login() for username in USERS}
    yield clients
    for client in clients.values():
        client.close()


@dataclass
class HandedOff:
    visitor: WebVisitor
    sender_id: str
    conversation_id: int
    handoff_id: int


async def hand_off(gateway: RunningGateway, rasa: StandInRasa, *, mode: str = HANDOFF_LIVE) -> HandedOff:
    """A web customer who chatted with the bot and asked for a person, as the action server leaves
    it: a queued handoff and, when a person takes over now, a handed-off conversation that Rasa paused."""
    visitor = await connect(gateway)
    await visitor.say("hi")
    await visitor.reply()
    sender_id = f"web:{visitor_of(SECRET_KEY, visitor.token)}"
    conversation_id, handoff_id = open_handoff_for(gateway, rasa, sender_id, mode=mode)
    return HandedOff(visitor, sender_id, conversation_id, handoff_id)


def open_handoff_for(
    gateway: RunningGateway, rasa: StandInRasa, sender_id: str, *, mode: str = HANDOFF_LIVE
) -> tuple[int, int]:
    """What the action server and Rasa do when a customer asks for a person (the bot side)."""
    with gateway.crm() as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
        assert conversation is not None
        handoff = Handoff(
            conversation_id=conversation.id,
            customer_id=conversation.customer_id,
            reason="customer_request",
            priority=15,
            status=HandoffStatus.QUEUED,
            mode=mode,
            requested_at=utcnow(),
        )
        crm.add(handoff)
        if mode == HANDOFF_LIVE:
            conversation.status = ConversationStatus.HANDED_OFF
            rasa.paused.add(sender_id)
        crm.commit()
        return conversation.id, handoff.id
