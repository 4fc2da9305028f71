"""The webhook sender: POSTs the outbox (bot/crm/webhooks.py) to each subscription, signed, in order.

Per subscription the deliveries go one at a time in the order the events happened: the oldest
pending one is tried first and, while it fails, the later ones wait behind it (a receiver sees
`complaint.opened` before `complaint.resolved`). A failure is retried after 30 s, 1 min, 2 min, ...
(at most an hour apart) for a day; then the delivery is marked failed, the queue moves on, and an
admin can resend it from the Integrations page. Each try is its own short transaction, so a crash
mid-run repeats at most the one POST it was making (receivers drop duplicates by `CareLoop-Delivery`).

Only the scheduler sends: the bot's request path writes the outbox row and never waits on a
receiver. A receiver that hangs costs this job at most `timeout` seconds per run.

Outside development the sender connects only to public addresses: the host is resolved at connect
time and every address it resolves to is checked before the connection is opened to that checked
address (TLS still verifies the host's name). A shop's hostname that resolves to this server or its
private network, now or after a DNS change, gets no request (the page refuses literal ones already).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpcore
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


class InternalAddress(httpcore.ConnectError):
    """The receiver's host resolves to an address a webhook must not reach."""


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


Resolve = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class PublicOnlyBackend(httpcore.SyncBackend):
    """Connects only when every address of the host is public, and then to a checked address, so a
    DNS answer that changes between the check and the connect cannot reach inside."""

    def __init__(self, resolver: Resolve = resolve) -> None:
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.resolver(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve the host: {error}") from error
        refused = [a for a in addresses if not is_public(a)]
        if refused or not addresses:
            raise InternalAddress("the host resolves to a private or local address")
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


def http_post(timeout: float = 5.0, *, public_only: bool = True, resolver: Resolve = resolve) -> Post:
    """A POST over httpx that never follows redirects and turns transport errors into an Attempt;
    `public_only` (everywhere but development and tests) refuses hosts that resolve inside."""
    transport = httpx.HTTPTransport()
    if public_only:
        transport._pool = httpcore.ConnectionPool(  # httpx has no public hook for the network backend
            ssl_context=httpx.create_ssl_context(), network_backend=PublicOnlyBackend(resolver)
        )
    client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def post(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            if isinstance(error.__cause__, InternalAddress):
                return Attempt(None, "refused: the host resolves to a private or local address")
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
