"""The load generator: simulated customers holding conversations, through the gateway's web chat
(the widget's websocket protocol) or straight to Rasa's channel for the gateway (with its shared
secret, as the gateway posts), with every turn timed.

Customers are closed-loop without think time: each sends its next message as soon as the whole
answer to the last one has arrived, so the figures are the stack's capacity, not a traffic model.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from bench.conversations import Script
from bench.population import ChatCustomer
from bot.gateway import wording
from bot.gateway.rasa_client import CHANNEL_PATH, CHANNEL_SECRET_HEADER

QUIET = 1.0  # answer seen and no typing indicator on: the turn ends after this much silence
HOLD_GRACE = 1.5  # typing stopped without an answer: wait this long for the holding answer


@dataclass
class TurnRecord:
    """One customer message and what came back."""

    sender_id: str
    script: str
    sent_at: float
    done_at: float | None = None
    replies: int = 0
    holding: bool = False  # the gateway said "I'll answer as soon as I can" first
    outcome: str = "no_answer"  # answered | silent | refused | no_answer | error

    @property
    def latency(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.sent_at


@dataclass
class LevelResult:
    target: str  # "gateway" or "rasa"
    customers: int  # how many talk at once
    seconds: float
    turns: list[TurnRecord]
    sent: dict[str, list[str]] = field(default_factory=dict)  # gateway: sender -> client ids sent
    received: dict[str, list[int]] = field(default_factory=dict)  # gateway: sender -> message ids

    def latencies(self) -> list[float]:
        return [t.latency for t in self.turns if t.outcome == "answered" and t.latency is not None]

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for turn in self.turns:
            counts[turn.outcome] = counts.get(turn.outcome, 0) + 1
        return counts


def combined(rounds: Sequence[LevelResult]) -> LevelResult:
    """Rounds of one level and path as one result (their wall times added)."""
    first = rounds[0]
    merged = LevelResult(first.target, first.customers, sum(r.seconds for r in rounds), [])
    for result in rounds:
        merged.turns.extend(result.turns)
    return merged


Talk = Callable[[ChatCustomer, Script], Awaitable[list[TurnRecord]]]


async def run_level(
    target: str, conversations: Sequence[tuple[ChatCustomer, Script]], customers: int, talk: Talk
) -> LevelResult:
    """Hold `conversations` with `customers` talking at once; each takes the next when done."""
    queue: asyncio.Queue[tuple[ChatCustomer, Script]] = asyncio.Queue()
    for conversation in conversations:
        queue.put_nowait(conversation)
    turns: list[TurnRecord] = []

    async def customer() -> None:
        while not queue.empty():
            who, script = queue.get_nowait()
            turns.extend(await talk(who, script))

    started = time.monotonic()
    await asyncio.gather(*(customer() for _ in range(customers)))
    return LevelResult(target, customers, time.monotonic() - started, turns)


class WebChatCustomer:
    """One visitor on the gateway's web chat: hello with the token, then message frames."""

    def __init__(self, ws_url: str, customer: ChatCustomer, answer_timeout: float) -> None:
        self.ws_url, self.customer, self.answer_timeout = ws_url, customer, answer_timeout
        self.sent: list[str] = []
        self.received: list[int] = []
        self._socket: Any = None

    async def __aenter__(self) -> WebChatCustomer:
        self._socket = await websockets.connect(self.ws_url, max_size=2**20)
        await self._socket.send(json.dumps({"type": "hello", "token": self.customer.token}))
        while (await self._frame(self.answer_timeout))["type"] != "ready":
            pass
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._socket.close()

    async def say(self, text: str, script: str) -> TurnRecord:
        client_id = f"bench-{len(self.sent) + 1}"
        self.sent.append(client_id)
        turn = TurnRecord(self.customer.sender_id, script, time.monotonic())
        await self._socket.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
        await self._await_answer(turn, client_id)
        ids = self.received[-turn.replies :] if turn.replies else []
        if ids:  # as the widget does: tell the gateway what was shown
            await self._socket.send(json.dumps({"type": "received", "ids": ids}))
        return turn

    async def _await_answer(self, turn: TurnRecord, client_id: str) -> None:
        """Read frames until the whole answer is in: the typing indicator went off after a reply,
        or replies arrived without one (the gateway's retry sweep answered) and then silence."""
        deadline = turn.sent_at + self.answer_timeout
        typing, stopped_empty = False, False
        while True:
            now = time.monotonic()
            if now >= deadline:
                return  # outcome stays no_answer
            wait = deadline - now
            if turn.replies and not typing:
                wait = min(wait, QUIET)
            elif stopped_empty:
                wait = min(wait, HOLD_GRACE)
            try:
                frame = await self._frame(wait)
            except asyncio.TimeoutError:
                if turn.replies and not typing:
                    turn.outcome = "answered"
                    return
                if stopped_empty and not turn.holding:
                    turn.outcome, turn.done_at = "silent", time.monotonic()
                    return
                continue
            kind = frame.get("type")
            if kind == "notice" and frame.get("client_id") == client_id:
                turn.outcome, turn.done_at = "refused", time.monotonic()
                return
            if kind == "typing":
                typing = bool(frame.get("on"))
                if not typing and turn.replies:
                    turn.outcome = "answered"
                    return
                stopped_empty = not typing and not turn.replies
            elif kind == "message":
                self._on_message(turn, frame["message"])

    def _on_message(self, turn: TurnRecord, message: dict[str, Any]) -> None:
        self.received.append(int(message["id"]))
        if message.get("author") == "system" and message.get("text") == wording.HOLDING:
            turn.holding = True
            return
        turn.replies += 1
        turn.done_at = time.monotonic()

    async def _frame(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self._socket.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        return frame


def gateway_talk(
    ws_url: str, answer_timeout: float, result_log: dict[str, tuple[list[str], list[int]]]
) -> Talk:
    """Conversations through the gateway; what each visitor sent and received goes to `result_log`."""

    async def talk(customer: ChatCustomer, script: Script) -> list[TurnRecord]:
        turns = []
        visitor = WebChatCustomer(ws_url, customer, answer_timeout)
        try:
            async with visitor:
                for text in script.for_customer(customer):
                    turns.append(await visitor.say(text, script.name))
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            turns.append(TurnRecord(customer.sender_id, script.name, time.monotonic(), outcome="error"))
        result_log[customer.sender_id] = (visitor.sent, visitor.received)
        return turns

    return talk


def rasa_talk(client: httpx.AsyncClient, rasa_url: str, channel_secret: str) -> Talk:
    """The same conversations posted straight to Rasa's channel for the gateway, as the gateway
    posts them (no gateway, no CRM transcript)."""
    headers = {CHANNEL_SECRET_HEADER: channel_secret}

    async def talk(customer: ChatCustomer, script: Script) -> list[TurnRecord]:
        metadata = {"first_name": customer.first_name, "language": "en", "channel": "web"}
        turns = []
        for text in script.for_customer(customer):
            turn = TurnRecord(customer.sender_id, script.name, time.monotonic())
            body = {"sender": customer.sender_id, "message": text, "metadata": metadata}
            try:
                response = await client.post(f"{rasa_url}{CHANNEL_PATH}", json=body, headers=headers)
                response.raise_for_status()
                turn.replies = len(response.json())
                turn.done_at = time.monotonic()
                turn.outcome = "answered" if turn.replies else "silent"
            except (httpx.HTTPError, ValueError):
                turn.outcome = "error"
            turns.append(turn)
        return turns

    return talk
