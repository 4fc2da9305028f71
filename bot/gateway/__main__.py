"""Run the gateway: `python -m bot.gateway` (the supervisor does this for `make run`)."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

from bot.bootstrap import bootstrap
from bot.gateway.app import create_app

MAX_WEBSOCKET_FRAME = 256 * 1024  # far above the message limit, so a long message gets a clear answer


def server_config(app: Any, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """How the gateway is served (tests serve it the same way)."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,  # keep the process's logging configuration
        # rasa-sdk pins websockets 10.4, too old for uvicorn's default protocol; wsproto is current.
        "ws": "wsproto",
        "ws_max_size": MAX_WEBSOCKET_FRAME,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 5,  # open chat sockets must not hold up a restart
        **overrides,
    }
    return uvicorn.Config(app, **options)


def main() -> None:
    # Opt in to python-telegram-bot's coming timedelta durations (RetryAfter.retry_after); without
    # it PTB warns on every flood-control answer. telegram_outlet handles both forms.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    settings = bootstrap()
    app = create_app(settings)
    uvicorn.Server(server_config(app, host=settings.gateway_host, port=settings.gateway_port)).run()


if __name__ == "__main__":
    main()
