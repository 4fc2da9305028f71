"""Clients that hang up early: one quiet log line, not an ERROR with a traceback.

A client may close its connection while its request body is still being read (Starlette raises
ClientDisconnect) or before a websocket is set up (WebSocketDisconnect). Neither is a fault of
ours, and anyone could repeat it to flood the log; everything else still reaches the server's
error handling."""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

log = logging.getLogger(__name__)


class HangUpGuard:
    """ASGI middleware: a request whose client hung up ends with an INFO line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except (ClientDisconnect, WebSocketDisconnect):
            if scope["type"] not in ("http", "websocket"):
                raise
            log.info("client hung up early %s %s", scope["type"], scope.get("path", ""))
