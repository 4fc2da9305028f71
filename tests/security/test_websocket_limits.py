"""Issue 15, item 7: a visitor token opens a few websockets, not any number, and it expires when it
has not been used for a month (each use renews it)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from bot.gateway import tokens
from tests.gateway.conftest import gateway
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway, close_sockets, connect

__all__ = ["crm_template", "gateway", "rasa"]

pytestmark = pytest.mark.timeout(60)

DAY = 24 * 3600.0
MAX_SOCKETS = 5


async def _hello(gateway: RunningGateway, token: str) -> tuple[list[dict[str, object]], int | None, str]:
    """Open a socket and say hello; the frames it got and how it was closed (None: still open)."""
    socket = await websockets.connect(gateway.ws_url)
    gateway.sockets.append(socket)
    await socket.send(json.dumps({"type": "hello", "token": token}))
    frames: list[dict[str, object]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), 5)))
            if frames[-1]["type"] == "ready":
                return frames, None, ""
    except ConnectionClosed:
        return frames, socket.close_code, socket.close_reason


async def test_a_visitor_token_opens_at_most_five_sockets_at_a_time(gateway: RunningGateway) -> None:
    token = await asyncio.to_thread(gateway.new_token)
    tabs = [await connect(gateway, token) for _ in range(MAX_SOCKETS)]

    frames, code, reason = await _hello(gateway, token)

    assert code == 4429 and "too many" in reason
    assert frames == [{"type": "error", "code": "too_many_connections"}]
    other_visitor = await connect(gateway)  # other visitors are not affected
    await tabs[0].socket.close()
    await asyncio.sleep(0.3)
    again = await connect(gateway, token)  # a closed tab frees its place
    assert (await tabs[1].say("still here"))["type"] == "ack"
    assert (await again.say("new tab"))["type"] == "ack"
    assert (await other_visitor.say("hi"))["type"] == "ack"
    await close_sockets(gateway)


async def test_a_token_unused_for_thirty_days_is_refused(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await asyncio.to_thread(gateway.new_token)
    assert (await asyncio.to_thread(gateway.history, token)).status_code == 200

    monkeypatch.setattr(tokens, "clock", lambda: time.time() + 31 * DAY, raising=False)

    assert (await asyncio.to_thread(gateway.history, token)).status_code == 401
    frames, code, _ = await _hello(gateway, token)
    assert (frames, code) == ([{"type": "error", "code": "unauthorized"}], 4401)
    fresh = await asyncio.to_thread(gateway.new_token)  # the widget then starts a new visitor session
    assert (await asyncio.to_thread(gateway.history, fresh)).status_code == 200
    await close_sockets(gateway)


async def test_each_use_renews_the_token_so_a_returning_visitor_keeps_their_chat(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await asyncio.to_thread(gateway.new_token)
    issued = time.time()

    # Two days later the visitor comes back: accepted, and handed a renewed token.
    monkeypatch.setattr(tokens, "clock", lambda: issued + 2 * DAY, raising=False)
    frames, code, _ = await _hello(gateway, token)
    assert code is None
    renewed = frames[-1].get("token")
    assert isinstance(renewed, str) and renewed != token
    history = await asyncio.to_thread(gateway.history, token)
    assert history.status_code == 200 and isinstance(history.json().get("token"), str)

    # Thirty-one days after it was issued, the unused original is refused, the renewed one is not.
    monkeypatch.setattr(tokens, "clock", lambda: issued + 31 * DAY, raising=False)
    assert (await asyncio.to_thread(gateway.history, token)).status_code == 401
    assert (await asyncio.to_thread(gateway.history, renewed)).status_code == 200
    _, code, _ = await _hello(gateway, renewed)
    assert code is None
    await close_sockets(gateway)
