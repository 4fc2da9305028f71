"""Talk to the Rasa server over HTTP: our own channel for customer messages (bot/rasa_channel.py,
which takes them only with the gateway's shared secret), the HTTP API (RASA_TOKEN) for proactive
intents and for finding answers Rasa gave to a request we stopped waiting for."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

MESSAGE_ID_KEY = "careloop_message_id"  # in the metadata of the user event, to find it again
# In the metadata of a copy given to the tracker while a person was in charge: not a turn the bot
# answered, so never where to look for the bot's answer to that message (a hand-back may send it again).
COPY_KEY = "careloop_copy"
CHANNEL_PATH = "/webhooks/gateway/webhook"  # bot.rasa_channel.GatewayInput
CHANNEL_SECRET_HEADER = "X-CareLoop-Channel-Secret"  # must equal bot.rasa_channel.SECRET_HEADER


class RasaUnavailable(RuntimeError):
    """Rasa (or the action server behind it) is unreachable, answered with an error, or did not
    answer within the time allowed (for a customer message: its patience, not its timeout)."""


class RasaRefused(RuntimeError):
    """Rasa understood the request and refused it (e.g. an intent the domain does not have)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Rasa refused the request ({status}): {detail}")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One message the bot wants to send."""

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    image: str | None = None
    custom: dict[str, Any] | None = field(default=None, hash=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Reply:
        """A reply from the channel's JSON or a tracker's `bot` event data."""
        buttons = tuple(
            Button(str(b.get("title", "")), str(b.get("payload", "")))
            for b in raw.get("buttons") or []
            if isinstance(b, dict) and b.get("title")
        )
        text, image, custom = raw.get("text"), raw.get("image"), raw.get("custom")
        return cls(
            text=text if isinstance(text, str) and text else None,
            buttons=buttons,
            image=image if isinstance(image, str) and image.startswith(("https://", "http://")) else None,
            custom=custom if isinstance(custom, dict) else None,
        )

    def payload(self) -> dict[str, Any] | None:
        """What the transcript keeps besides the text."""
        data: dict[str, Any] = {}
        if self.buttons:
            data["buttons"] = [{"title": b.title, "payload": b.payload} for b in self.buttons]
        if self.image:
            data["image"] = self.image
        if self.custom:
            data["custom"] = self.custom
        return data or None


class RasaClient:
    """An async client for one Rasa server; `open()` before use, `close()` after.

    `timeout` bounds every request except a customer message, which may take up to `patience`:
    Rasa 3.6 (Sanic) cancels the turn of a request whose caller hangs up and saves nothing of it,
    so giving up on a slow answer throws Rasa's work away and puts the message back in its queue.
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        channel_secret: str,
        patience: float | None = None,
    ):
        if not channel_secret:
            raise ValueError("RasaClient needs the channel secret (RASA_CHANNEL_SECRET)")
        self.url, self._token, self.timeout = url.rstrip("/"), token, timeout
        self._channel_secret = channel_secret
        self.patience = max(patience or timeout, timeout)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout, transport=self._transport)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send_message(
        self, sender_id: str, text: str, *, message_id: int, channel: str, metadata: dict[str, Any]
    ) -> list[Reply]:
        """Post a customer message to our channel, with the shared secret, and return the bot's replies."""
        body = {
            "sender": sender_id,
            "message": text,
            "input_channel": channel,
            "metadata": {**metadata, MESSAGE_ID_KEY: message_id},
        }
        # A slow answer is waited for; a Rasa that does not even take the connection is down.
        patient = httpx.Timeout(self.patience, connect=self.timeout)
        secret = {CHANNEL_SECRET_HEADER: self._channel_secret}
        try:
            data = await self._request("POST", CHANNEL_PATH, json=body, timeout=patient, headers=secret)
        except RasaRefused as refused:
            if refused.status not in (401, 403):
                raise
            # Our secret, not this message, is what Rasa refused (RASA_CHANNEL_SECRET differs
            # between the two): keep the message for when the deployment is fixed.
            raise RasaUnavailable(
                "Rasa refused the gateway's channel secret (RASA_CHANNEL_SECRET)"
            ) from refused
        if not isinstance(data, list):
            raise RasaUnavailable("Rasa's channel answered with something other than a list")
        return [Reply.parse(item) for item in data if isinstance(item, dict)]

    async def trigger_intent(self, sender_id: str, intent: str, entities: dict[str, Any]) -> list[Reply]:
        """Inject an intent into the conversation (proactive work) and return the bot's replies."""
        path = f"/conversations/{_quote(sender_id)}/trigger_intent"
        data = await self._request(
            "POST", path, json={"name": intent, "entities": entities}, params={"token": self._token}
        )
        messages = data.get("messages") if isinstance(data, dict) else None
        return [Reply.parse(item) for item in messages or [] if isinstance(item, dict)]

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        """Append events to the conversation's tracker (e.g. pause or resume)."""
        path = f"/conversations/{_quote(sender_id)}/tracker/events"
        await self._request("POST", path, json=events, params={"token": self._token})

    async def parse(self, text: str) -> dict[str, Any]:
        """What Rasa's NLU reads in a text (intent, entities), without a conversation turn."""
        data = await self._request("POST", "/model/parse", json={"text": text}, params={"token": self._token})
        if not isinstance(data, dict):
            raise RasaUnavailable("Rasa's parse answered with something other than an object")
        return data

    async def add_user_message(
        self, sender_id: str, text: str, *, message_id: int, sent_at: float, channel: str
    ) -> None:
        """Add a customer message to the tracker as history, with its NLU reading, without a turn
        (nothing is predicted): for messages Rasa missed while a person was in charge."""
        event = {
            "event": "user",
            "text": text,
            "parse_data": await self.parse(text),
            "timestamp": sent_at,
            "input_channel": channel,
            "message_id": str(message_id),
            "metadata": {MESSAGE_ID_KEY: message_id, "added_late": True, COPY_KEY: True},
        }
        await self.append_events(sender_id, [event])

    async def pause(self, sender_id: str) -> None:
        """Silence the bot in this conversation: a person is in charge (ConversationPaused)."""
        await self.append_events(sender_id, [{"event": "pause"}])

    async def resume(self, sender_id: str) -> None:
        """Give the conversation back to the bot (ConversationResumed), listening: a pause stops
        Rasa mid-turn, and without `action_listen` its rules (which start from it) would not match
        the next intent, e.g. EXTERNAL_handback."""
        await self.append_events(
            sender_id, [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
        )

    async def replies_already_given(self, sender_id: str, message_id: int) -> list[Reply] | None:
        """If Rasa already handled our message `message_id` (we gave up waiting, it carried on),
        the replies it gave; None if the message never reached the tracker."""
        path = f"/conversations/{_quote(sender_id)}/tracker"
        data = await self._request("GET", path, params={"token": self._token, "include_events": "ALL"})
        events = data.get("events") if isinstance(data, dict) else None
        replies: list[Reply] | None = None
        for event in events or []:
            kind = event.get("event")
            if kind == "user":
                if replies is not None:
                    break
                metadata = event.get("metadata") or {}
                if metadata.get(MESSAGE_ID_KEY) == message_id and not metadata.get(COPY_KEY):
                    replies = []
            elif kind == "bot" and replies is not None:
                replies.append(Reply.parse({"text": event.get("text"), **(event.get("data") or {})}))
        return replies

    async def active_loop(self, sender_id: str) -> str | None:
        """The form the bot is in the middle of in this conversation (None if it asked nothing)."""
        path = f"/conversations/{_quote(sender_id)}/tracker"
        data = await self._request("GET", path, params={"token": self._token, "include_events": "NONE"})
        loop = data.get("active_loop") if isinstance(data, dict) else None
        name = loop.get("name") if isinstance(loop, dict) else None
        return name if isinstance(name, str) and name else None

    async def _request(
        self, method: str, path: str, *, timeout: httpx.Timeout | None = None, **kwargs: Any
    ) -> Any:
        if self._client is None:
            raise RuntimeError("RasaClient.open() was not called")
        timeout = timeout or httpx.Timeout(self.timeout)
        try:
            response = await self._client.request(method, path, timeout=timeout, **kwargs)
        except httpx.ConnectTimeout as error:
            raise RasaUnavailable(f"Rasa did not take the connection within {timeout.connect:g} s") from error
        except httpx.TimeoutException as error:
            raise RasaUnavailable(f"Rasa did not answer within {timeout.read:g} s") from error
        except httpx.TransportError as error:
            raise RasaUnavailable(f"Rasa is unreachable ({type(error).__name__})") from error
        if response.status_code >= 500:
            raise RasaUnavailable(f"Rasa answered {response.status_code}")
        if response.status_code >= 400:
            raise RasaRefused(response.status_code, _detail(response))
        try:
            return response.json()
        except ValueError as error:
            raise RasaUnavailable("Rasa answered with invalid JSON") from error


def _quote(sender_id: str) -> str:
    return quote(sender_id, safe=":")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body.get("reason") or body)[:200] if isinstance(body, dict) else ""
