"""Writing to a websocket without waiting on a client that stopped reading (visitors and agents)."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


async def send_text(socket: WebSocket, text: str, *, timeout: float) -> bool:
    """Send one text frame within `timeout` seconds; False if the socket is gone or stuck."""
    if socket.application_state != WebSocketState.CONNECTED:
        return False
    try:
        await asyncio.wait_for(socket.send_text(text), timeout)
    except (WebSocketDisconnect, RuntimeError, OSError, asyncio.TimeoutError):
        return False
    return True
