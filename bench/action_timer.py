"""A pass-through between Rasa and the action server that times every custom action call, so the
actions' share of an answer is measured rather than guessed. It runs in the bench process, and
also reports its own handling time (the only overhead it adds besides one loopback hop)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.chat_load import TurnRecord
from bench.stats import percentile


@dataclass(frozen=True)
class ActionCall:
    sender_id: str
    action: str
    started: float  # time.monotonic(), the load generator's clock
    seconds: float  # the action server's answer time
    own_seconds: float  # the pass-through's own handling time


class ActionTimer:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.calls: list[ActionCall] = []
        self.url = ""  # set once it is served
        self._client: httpx.AsyncClient | None = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhook", self.forward, methods=["POST"])], lifespan=self._lifespan)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=120) as client:
            self._client = client
            yield

    async def forward(self, request: Request) -> Response:
        arrived = time.monotonic()
        body = await request.body()
        assert self._client is not None
        started = time.monotonic()
        # Rasa's token for the action server (endpoints.yml) passes through untouched.
        headers = {
            "content-type": "application/json",
            "authorization": request.headers.get("authorization", ""),
        }
        answer = await self._client.post(f"{self.upstream}/webhook", content=body, headers=headers)
        seconds = time.monotonic() - started
        call = _call_of(body, started, seconds, own=time.monotonic() - arrived - seconds)
        with self.lock:
            self.calls.append(call)
        return Response(answer.content, answer.status_code, media_type="application/json")

    def snapshot(self) -> list[ActionCall]:
        with self.lock:
            return list(self.calls)


def _call_of(body: bytes, started: float, seconds: float, own: float) -> ActionCall:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    sender = str(data.get("sender_id") or (data.get("tracker") or {}).get("sender_id") or "")
    return ActionCall(sender, str(data.get("next_action") or ""), started, seconds, own)


def action_share(turns: Sequence[TurnRecord], calls: Sequence[ActionCall]) -> dict[str, float | None]:
    """How much of the answered turns' time the action server took: per turn (median) and in all."""
    by_sender: dict[str, list[ActionCall]] = {}
    for call in calls:
        by_sender.setdefault(call.sender_id, []).append(call)
    spent, total, shares = 0.0, 0.0, []
    for turn in turns:
        if turn.outcome != "answered" or turn.done_at is None:
            continue
        inside = sum(
            c.seconds for c in by_sender.get(turn.sender_id, ()) if turn.sent_at <= c.started <= turn.done_at
        )
        spent, total = spent + inside, total + (turn.done_at - turn.sent_at)
        shares.append(inside / (turn.done_at - turn.sent_at))
    median = percentile(shares, 50)
    return {
        "share": round(spent / total, 3) if total else None,
        "median_share": None if median is None else round(median, 3),
        "mean_ms_per_turn": round(spent / len(shares) * 1000, 1) if shares else None,
    }


def own_overhead_ms(calls: Sequence[ActionCall]) -> float | None:
    """The pass-through's median handling time per call."""
    median = percentile([c.own_seconds for c in calls], 50)
    return None if median is None else round(median * 1000, 2)
