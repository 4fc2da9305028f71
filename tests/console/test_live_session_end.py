"""An open console tab loses its live socket when its login ends (issue 15, item 4).

Logging out in another tab, an admin's role change or a password reset ends the session on the
server; the live socket of a page opened before must not keep streaming customers' messages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from bot.console import desk as console_desk
from bot.crm.models import Agent
from tests.console.conftest import ConsoleClient
from tests.gateway.harness import RunningGateway

FORBIDDEN = 4403


async def frames_until_closed(socket: Any, timeout: float) -> list[str]:
    """The types of the frames received until the server closes the socket."""
    kinds: list[str] = []

    async def read() -> None:
        while True:
            kinds.append(json.loads(await socket.recv())["type"])

    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(read(), timeout)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == FORBIDDEN, closed.value
    return kinds


async def test_the_socket_of_a_page_opened_before_logout_is_closed(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_desk, "HEARTBEAT_SECONDS", 0.2)
    alex = console["alex"]
    socket = await alex.socket()
    await asyncio.sleep(1.0)
    assert socket.open  # a live login keeps its socket beat after beat

    response = await asyncio.to_thread(alex.post, "/logout", as_json=False)
    assert response.status_code == 303, response.text
    kinds = await frames_until_closed(socket, timeout=5.0)
    assert "ready" in kinds


async def test_a_session_ended_by_an_admin_closes_the_agents_socket(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_desk, "HEARTBEAT_SECONDS", 0.2)
    alex, ada = console["alex"], console["ada"]
    socket = await alex.socket()
    await asyncio.sleep(0.5)
    assert socket.open
    with desk_gateway.crm() as crm:
        alex_id = crm.scalar(select(Agent.id).where(Agent.username == "alex"))
    response = await asyncio.to_thread(ada.post, f"/users/{alex_id}/sessions/end", as_json=False)
    assert response.status_code in (200, 303), response.text
    await frames_until_closed(socket, timeout=5.0)
