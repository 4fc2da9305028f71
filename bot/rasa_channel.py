"""CareLoop's door into Rasa for customer messages: Rasa's REST channel, open only to the gateway.

Rasa's own `rest` channel takes a message for any sender from anyone who can reach the port (a
browser page included, through a `text/plain` POST), which would bypass the gateway's visitor
tokens, limits, filters and transcript. This channel behaves like it (one JSON request, the bot's
replies as a JSON list; `input_channel` and `metadata` from the body) but serves only a caller that
shows the gateway's shared secret, RASA_CHANNEL_SECRET, in the `X-CareLoop-Channel-Secret` header.
Defence in depth behind the gateway's own filter: a message Rasa would read as an `EXTERNAL_*`
intent is refused even with the secret; those intents come only through the HTTP API (RASA_TOKEN),
from the scheduler and the gateway's internal API, never from a customer.

credentials.yml names the class (`bot.rasa_channel.GatewayInput`, served at
/webhooks/gateway/webhook) and gives it the secret from the environment. This module runs in the
Rasa environment, so it imports nothing of CareLoop's; it lives outside bot/nlu so that changing
it does not change the model's fingerprint (bot/ops/model.py).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

SECRET_HEADER = "X-CareLoop-Channel-Secret"
INTENT_PREFIX = "/"  # rasa.shared.constants.INTENT_MESSAGE_PREFIX
EXTERNAL_PREFIX = "EXTERNAL_"  # CareLoop's proactive intents (domain.yml)

log = logging.getLogger(__name__)


class GatewayInput(RestInput):
    """Rasa's REST channel for the gateway only: every request must carry the shared secret."""

    def __init__(self, secret: str) -> None:
        if not secret.strip():
            raise ValueError("GatewayInput needs a non-empty secret (RASA_CHANNEL_SECRET)")
        self._secret = secret.encode()

    @classmethod
    def name(cls) -> str:
        return "gateway"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> GatewayInput:
        """The channel from its credentials.yml entry; Rasa refuses to start without a secret."""
        secret = (credentials or {}).get("secret")
        if not isinstance(secret, str) or not secret.strip():
            raise ValueError(
                "credentials.yml: bot.rasa_channel.GatewayInput needs `secret: ${RASA_CHANNEL_SECRET}`"
                " and RASA_CHANNEL_SECRET must not be empty"
            )
        return cls(secret)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """RestInput's routes, each behind the secret check (blueprint middleware is per route)."""
        webhook = super().blueprint(on_new_message)

        # A plain function: Sanic 21.12's Blueprint.middleware silently ignores a bound method.
        async def refuse_strangers(request: Request) -> HTTPResponse | None:
            return await self._refuse_strangers(request)

        webhook.middleware(refuse_strangers, "request")
        return webhook

    async def _refuse_strangers(self, request: Request) -> HTTPResponse | None:
        """Answer 401 unless the request shows the secret, 415 unless its body is declared JSON, and
        422 for a message Rasa would read as an external intent."""
        given = request.headers.get(SECRET_HEADER, "")
        # Bytes, not str: compare_digest refuses non-ASCII text, which a stranger may well send.
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._secret):
            log.warning("gateway channel refused a request without the shared secret path=%s", request.path)
            return response.json({"error": "unauthorized"}, status=401)
        if request.method != "POST":
            return None
        if _media_type(request) != "application/json":
            return response.json({"error": "expected application/json"}, status=415)
        body = request.json
        text = body.get("message") if isinstance(body, dict) else None
        if isinstance(text, str) and reads_as_external_intent(text):
            log.warning("gateway channel refused an external intent in a message")
            return response.json({"error": "external intents do not come through this channel"}, status=422)
        return None


def reads_as_external_intent(text: str) -> bool:
    """Whether Rasa would read `text` as an EXTERNAL_* intent: like Rasa (UserMessage and
    YAMLStoryReader.unpack_regex_message), strip it, then take the name after `/` up to `{` or `@`."""
    stripped = text.strip()
    if not stripped.startswith(INTENT_PREFIX):
        return False
    name = re.split(r"[{@]", stripped[len(INTENT_PREFIX) :], maxsplit=1)[0].strip()
    return name.startswith(EXTERNAL_PREFIX)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()
