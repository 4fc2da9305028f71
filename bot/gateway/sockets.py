"""Writing to a websocket without waiting on a client that stopped reading (visitors and agents)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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


async def send_frame(socket: WebSocket, frame: dict[str, Any], *, timeout: float) -> bool:
    """Send one JSON frame within `timeout` seconds; False if the socket is gone or stuck."""
    return await send_text(socket, json.dumps(frame), timeout=timeout)
