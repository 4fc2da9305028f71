"""Serve the custom actions on loopback only, to Rasa only: `python -m bot.ops.action_server`.

rasa_sdk's own launcher binds every interface (0.0.0.0) and runs any action for anyone, trusting
the sender id in the posted tracker; the actions write to the CRM. So the server listens on
127.0.0.1 and, except for /health, answers only requests with `Authorization: Bearer
<ACTION_SERVER_TOKEN>`, which Rasa sends (endpoints.yml, action_endpoint.headers).
"""

from __future__ import annotations

import hmac
import logging

from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.bootstrap import bootstrap
from bot.settings import Settings

OPEN_PATHS = frozenset({"/health"})  # the supervisor's health check carries no token

log = logging.getLogger(__name__)


def require_token(app: Sanic, token: str) -> None:
    """Refuse (401) every request to `app` outside OPEN_PATHS that lacks `Bearer <token>`."""
    if not token.strip():
        raise ValueError("the action server needs a non-empty ACTION_SERVER_TOKEN")
    expected = token.encode()

    async def refuse_strangers(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Bytes, not str: compare_digest refuses non-ASCII text, which a stranger may well send.
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), expected
        ):
            return None
        log.warning("action server refused a request without Rasa's token path=%s", request.path)
        return response.json({"error": "unauthorized"}, status=401)

    # Request middleware runs before every route handler, rasa_sdk's included.
    app.register_middleware(refuse_strangers, "request")


def build_app(settings: Settings) -> Sanic:
    """rasa_sdk's app for our actions, behind Rasa's token."""
    app = create_app("bot.actions", cors_origins=[])
    require_token(app, settings.action_server_token)
    return app


def main() -> None:
    settings = bootstrap()
    build_app(settings).run("127.0.0.1", settings.action_server_port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
