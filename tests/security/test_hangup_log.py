"""Issue 15, item 7: a client that hangs up before its answer is written costs one quiet log line,
not an ERROR with a traceback (which anyone could repeat to flood the log)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from tests.gateway.conftest import gateway
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import INTERNAL_TOKEN, RunningGateway

__all__ = ["crm_template", "gateway", "rasa"]

pytestmark = pytest.mark.timeout(60)

WEBSOCKET_UPGRADE = (
    b"GET /webchat/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PARTIAL_PROACTIVE = (
    b"POST /internal/proactive HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
    + INTERNAL_TOKEN.encode()
    + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"customer_id"'
)
PARTIAL_LOGIN = (
    b"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a"
)


def hang_up_after(port: int, request: bytes, wait: float = 0.3) -> None:
    """Send (part of) a request, wait a moment, and close the connection without reading."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(request)
        time.sleep(wait)


@pytest.mark.parametrize(
    "request_bytes",
    [WEBSOCKET_UPGRADE, PARTIAL_PROACTIVE, PARTIAL_LOGIN],
    ids=["websocket-before-hello", "internal-api-mid-body", "console-form-mid-body"],
)
async def test_a_client_that_hangs_up_early_leaves_no_error_in_the_log(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        await asyncio.to_thread(hang_up_after, gateway.server.port, request_bytes)
    await asyncio.sleep(0.5)  # let the server notice and finish

    loud = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    tracebacks = [r.name for r in caplog.records if r.exc_info]
    assert loud == [] and tracebacks == []
    quiet = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert len(quiet) == 3 and all(r.levelno <= logging.INFO for r in quiet)
