"""The webhook sender: POSTs the outbox (bot/crm/webhooks.py) to each subscription, signed, in order.

Per subscription the deliveries go one at a time in the order the events happened: the oldest
pending one is tried first and, while it fails, the later ones wait behind it (a receiver sees
`complaint.opened` before `complaint.resolved`). A failure is retried after 30 s, 1 min, 2 min, ...
(at most an hour apart) for a day; then the delivery is marked failed, the queue moves on, and an
admin can resend it from the Integrations page. Each try is its own short transaction, so a crash
mid-run repeats at most the one POST it was making (receivers drop duplicates by `CareLoop-Delivery`).

Only the scheduler sends: the bot's request path writes the outbox row and never waits on a
receiver. A receiver that hangs costs this job at most `timeout` seconds per run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import webhooks
from bot.crm.models import WebhookDelivery, WebhookStatus, WebhookSubscription

log = logging.getLogger(__name__)

MAX_PER_SUBSCRIPTION = 100  # per run: one busy subscription cannot starve the others for long
MAX_ERROR = 200


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: the receiver's status code, or why there was none."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Post = Callable[[str, bytes, dict[str, str]], Attempt]


def http_post(timeout: float = 5.0) -> Post:
    """A POST over httpx that never follows redirects and turns transport errors into an Attempt."""
    client = httpx.Client(timeout=timeout, follow_redirects=False)

    def post(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return Attempt(None, type(error).__name__)
        return Attempt(response.status_code)

    return post


class WebhookSender:
    def __init__(self, factory: sessionmaker[Session], post: Post, clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.post = post
        self.clock = clock

    def run_due(self) -> Counter[str]:
        """Send what is due for every live subscription; count the outcomes."""
        with self.factory.begin() as session:
            live = list(
                session.scalars(
                    select(WebhookSubscription.id)
                    .where(WebhookSubscription.disabled_at.is_(None))
                    .order_by(WebhookSubscription.id)
                )
            )
        outcomes: Counter[str] = Counter()
        for subscription_id in live:
            for _ in range(MAX_PER_SUBSCRIPTION):
                outcome = self.send_next(subscription_id)
                if outcome is None:
                    break
                outcomes[outcome] += 1
                if outcome == "retry":
                    break  # the rest wait behind it, in order
        return outcomes

    def send_next(self, subscription_id: int) -> str | None:
        """Try the subscription's oldest pending delivery if it is due; None when nothing is."""
        now = self.clock()
        with self.factory.begin() as session:
            delivery = session.scalar(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == subscription_id,
                    WebhookDelivery.status == WebhookStatus.PENDING,
                )
                .order_by(WebhookDelivery.id)
                .limit(1)
            )
            if delivery is None or delivery.next_attempt_at > now:
                return None
            subscription = session.get(WebhookSubscription, subscription_id)
            assert subscription is not None  # the delivery's foreign key
            url, secret, body = subscription.url, subscription.secret, webhooks.body_of(delivery)
            delivery_id, event, event_id = delivery.id, delivery.event, delivery.event_id
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CareLoop-Webhooks/1",
            "CareLoop-Event": event,
            "CareLoop-Delivery": event_id,
            webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body, int(now.timestamp())),
        }
        attempt = self.post(url, body, headers)
        return self.record(delivery_id, attempt, now)

    def record(self, delivery_id: int, attempt: Attempt, now: datetime) -> str:
        """Store the try's outcome: delivered, a retry later, or given up after a day."""
        with self.factory.begin() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            assert delivery is not None  # deliveries are never deleted while pending
            delivery.attempts += 1
            delivery.last_status = attempt.status
            delivery.last_error = attempt.error[:MAX_ERROR] if attempt.error else None
            if attempt.ok:
                delivery.status, delivery.delivered_at = WebhookStatus.DELIVERED, now
            elif webhooks.gives_up(delivery.attempts):
                delivery.status = WebhookStatus.FAILED
            else:
                delivery.next_attempt_at = now + webhooks.retry_delay(delivery.attempts)
            outcome = delivery.status.value if delivery.status is not WebhookStatus.PENDING else "retry"
            tries = delivery.attempts
        log.info(
            "webhook delivery %s attempt %s: %s (%s)",
            delivery_id,
            tries,
            outcome,
            attempt.status or attempt.error,
        )
        return outcome
