"""Proactive fan-out: a campaign to the whole bench population, sent by the scheduler's own code
(campaigns.fan_out, the policy gate, the exactly-once sender) through the gateway and Rasa's
`trigger_intent` into the channels; and, for comparison, `trigger_intent` called straight at Rasa
at the same concurrency.

The sender runs in the bench process with several workers and without the scheduler's pacing
(OUTREACH_RATE_PER_SECOND), so the figure is the path's capacity, not the configured send rate.
Quiet hours are off (00:00-00:00) so that every customer is due now wherever they live; consent,
reachability and the weekly cap still apply.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.clock import utcnow
from bot.crm.db import make_engine
from bot.crm.models import Delivery, DeliveryStatus
from scheduler.campaigns.fanout import fan_out
from scheduler.campaigns.lifecycle import create_campaign
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender

CAMPAIGN_MESSAGE = "Hi {first_name}, our winter roast is here: 15% off this week only."
CAMPAIGN_BUTTON = "Tell me more"
NO_QUIET_HOURS = "00:00-00:00"
DIRECT_SENDER_BASE = 8_000_000_000  # Telegram-like chat ids nobody in the CRM has
NOT_STARTED = "not_started"  # the time budget ran out first

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Campaigned:
    campaign_id: int
    deliveries: int
    seconds: float  # how long fan_out took to queue them


def queue_campaign(*, session: Session, now: datetime) -> Campaigned:
    """A campaign to everyone, scheduled for yesterday 10:00 local time (so due everywhere), fanned out."""
    yesterday = (now - timedelta(days=1)).date()
    campaign = create_campaign(
        session=session,
        name="Bench: winter roast",
        message=CAMPAIGN_MESSAGE,
        audience={},
        schedule={"date": yesterday.isoformat(), "time": "10:00"},
        buttons=[CAMPAIGN_BUTTON],
    )
    started = time.monotonic()
    created = fan_out(session=session, campaign=campaign, occurrence=yesterday, now=now)
    return Campaigned(campaign.id, created, time.monotonic() - started)


def campaign_deliveries(*, session: Session, campaign_id: int) -> list[tuple[int, dict[str, Any]]]:
    """(delivery id, trigger_intent entities) of the campaign's queued deliveries, in send order."""
    rows = session.execute(
        select(Delivery.id, Delivery.payload)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.scheduled_for, Delivery.id)
    )
    return [(delivery_id, dict(payload or {})) for delivery_id, payload in rows]


@dataclass
class SendRun:
    concurrency: int
    seconds: float
    outcomes: Counter[str]

    @property
    def sent(self) -> int:
        return self.outcomes["sent"]


def combined(runs: Sequence[SendRun]) -> SendRun:
    """Rounds of one path as one run (their times added)."""
    outcomes: Counter[str] = Counter()
    for run in runs:
        outcomes.update(run.outcomes)
    return SendRun(runs[0].concurrency, sum(r.seconds for r in runs), outcomes)


def send_campaign(
    *,
    database_url: str,
    gateway_url: str,
    token: str,
    weekly_cap: int,
    delivery_ids: Sequence[int],
    concurrency: int,
    deadline: float,
) -> SendRun:
    """Send the deliveries with `concurrency` sender workers through the gateway's internal API;
    what is not started by `deadline` (time.monotonic()) stays queued."""
    engine = make_engine(database_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    policy = Policy.parse(NO_QUIET_HOURS, weekly_cap)
    clients: list[HttpGateway] = []

    def new_sender() -> Sender:
        gateway = HttpGateway(gateway_url, token, timeout=60)
        clients.append(gateway)
        return Sender(factory, gateway, policy, clock=utcnow, rate_per_second=0)

    try:
        outcomes, seconds = _in_workers(
            delivery_ids, concurrency, new_sender, lambda s, i: s.process(i), deadline
        )
    finally:
        for client in clients:
            client.close()
        engine.dispose()
    return SendRun(concurrency, seconds, Counter(outcomes))


def trigger_directly(
    *, rasa_url: str, token: str, entities: Sequence[dict[str, Any]], concurrency: int, deadline: float
) -> SendRun:
    """`EXTERNAL_campaign` straight at Rasa for fresh conversations, `concurrency` at a time,
    none started after `deadline`."""
    clients: list[httpx.Client] = []

    def new_client() -> httpx.Client:
        client = httpx.Client(base_url=rasa_url, params={"token": token}, timeout=60)
        clients.append(client)
        return client

    def trigger(client: httpx.Client, item: tuple[int, dict[str, Any]]) -> str:
        number, payload = item
        path = f"/conversations/telegram:{DIRECT_SENDER_BASE + number}/trigger_intent"
        try:
            response = client.post(path, json={"name": "EXTERNAL_campaign", "entities": payload})
        except httpx.HTTPError:
            return "error"
        return "sent" if response.status_code == 200 and response.json().get("messages") else "error"

    try:
        outcomes, seconds = _in_workers(list(enumerate(entities)), concurrency, new_client, trigger, deadline)
    finally:
        for client in clients:
            client.close()
    return SendRun(concurrency, seconds, Counter(outcomes))


def _in_workers(
    items: Sequence[T],
    concurrency: int,
    make: Callable[[], R],
    work: Callable[[R, T], str],
    deadline: float,
) -> tuple[list[str], float]:
    """Run `work(own, item)` over `items` on `concurrency` threads, each with its own `make()`;
    items not started by `deadline` count as "not_started". Returns the outcomes and the seconds
    until the last started item finished."""
    local = threading.local()
    lock = threading.Lock()
    finished = [time.monotonic()]

    def run(item: T) -> str:
        if time.monotonic() >= deadline:
            return NOT_STARTED
        if not hasattr(local, "own"):
            with lock:
                local.own = make()
        outcome = work(local.own, item)
        with lock:
            finished[0] = max(finished[0], time.monotonic())
        return outcome

    started = finished[0] = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-send") as pool:
        outcomes = list(pool.map(run, items))
    return outcomes, finished[0] - started
