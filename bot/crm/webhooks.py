"""Outbound webhooks: an admin subscribes a URL to CRM events; each event becomes an outbox row.

`emit` is called where the event happens, inside the same transaction: if that transaction rolls
back there is no row, and if it commits the row is there for the scheduler (scheduler/webhooks.py)
to POST, so a crash neither loses nor invents an event. Nothing here touches the network: a
receiver that is down never slows the conversation that caused the event.

Each POST carries `CareLoop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` made
with the subscription's secret. A receiver recomputes it (`verify_signature`) and refuses a `t`
older than five minutes, so a captured request cannot be replayed later; `CareLoop-Delivery` (the
event's id) lets it drop the duplicates that retries can bring.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.crm.models import Agent, Customer, WebhookDelivery, WebhookStatus, WebhookSubscription, utcnow
from bot.crm.queries import record_audit

EMIT_CHUNK = 1000  # rows per INSERT (an executemany)
# The events the code emits today, with what they mean on the Integrations page.
EVENTS: dict[str, str] = {
    "complaint.opened": "a customer's complaint became a case",
    "complaint.resolved": "an agent resolved a case",
    "retention.saved": "a customer who wanted to leave accepted an offer",
    "retention.lost": "a customer declined the offers and asked to cancel",
    "subscription.cancel_requested": "a subscription's cancellation was requested",
    "handoff.requested": "a conversation was queued for a person",
    "consent.changed": "a customer granted or withdrew consent",
    "survey.rated": "a customer rated the service (1-5)",
    "customer.segment_changed": "a customer moved to another segment (MVC, MCC, BZ, standard)",
    "customer.updated": "a customer changed their delivery address or name in chat",
}
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "CareLoop-Signature"
TOLERANCE_SECONDS = 300  # receivers refuse older signatures: a captured request cannot be replayed
MAX_URL = 2000
MAX_EVENTS_PER_SUBSCRIPTION = len(EVENTS)
# Retries: 30 s, 1 min, 2 min, ... doubling up to an hour apart, for a day in all.
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
RETRY_FOR = timedelta(days=1)
LOCAL_ENVIRONMENTS = ("development", "test")


class WebhookRefused(ValueError):
    """A subscription cannot be made as asked; the message is for the admin."""


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    url: str
    events: list[str]
    created_by: str | None
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    subscription_id: int
    url: str
    event: str
    event_id: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def clean_url(url: str, *, environment: str) -> str:
    """The URL as stored: http(s) with a host, no credentials or fragment; https outside development."""
    url = url.strip()
    if not url:
        raise WebhookRefused("Give the URL that should receive the events.")
    if len(url) > MAX_URL:
        raise WebhookRefused(f"A webhook URL has at most {MAX_URL} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookRefused("A webhook URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused("This is not a valid URL.") from None
    local = environment in LOCAL_ENVIRONMENTS
    if parts.scheme not in (("https", "http") if local else ("https",)):
        raise WebhookRefused("A webhook URL starts with https:// (the events carry customers' ids).")
    if not parts.hostname:
        raise WebhookRefused("A webhook URL names a host, e.g. https://shop.example/careloop-events.")
    if parts.username or parts.password:
        raise WebhookRefused("Leave credentials out of the URL: the signature proves who is calling.")
    if parts.fragment:
        raise WebhookRefused("A webhook URL has no #fragment.")
    if not local and _is_internal(parts.hostname):
        raise WebhookRefused("A webhook URL must reach the shop, not this server or its private network.")
    del port  # read only to reject a malformed port
    return url


def _is_internal(host: str) -> bool:
    """Whether the host is a literal loopback, private or link-local address (or localhost)."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def clean_events(events: list[str]) -> list[str]:
    """The chosen events, known ones only, in the page's order."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise WebhookRefused(f"Unknown event: {unknown[0]}.")
    chosen = [event for event in EVENTS if event in events]
    if not chosen:
        raise WebhookRefused("Choose at least one event to send.")
    return chosen


def create_subscription(
    *, session: Session, url: str, events: list[str], agent_id: int, environment: str
) -> tuple[SubscriptionRow, str]:
    """Subscribe a URL; return its row and its signing secret (shown to the admin this once)."""
    url, chosen = clean_url(url, environment=environment), clean_events(events)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    subscription = WebhookSubscription(
        url=url, events=chosen, secret=secret, created_by_id=agent_id, created_at=utcnow()
    )
    session.add(subscription)
    session.flush()
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action="webhook_subscribed",
        entity="webhook_subscription",
        entity_id=subscription.id,
        details={"url": url, "events": chosen},
    )
    return _subscription_row(session, subscription), secret


def disable_subscription(*, session: Session, subscription_id: int, agent_id: int) -> None:
    """Stop sending to a subscription (its pending deliveries stay in the log, unsent)."""
    subscription = session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise LookupError(subscription_id)
    if subscription.disabled_at is None:
        subscription.disabled_at = utcnow()
        record_audit(
            session=session,
            actor=f"agent:{agent_id}",
            action="webhook_disabled",
            entity="webhook_subscription",
            entity_id=subscription.id,
            details={"url": subscription.url},
        )


def emit(session: Session, event: str, payload: dict[str, Any], *, now: datetime | None = None) -> int:
    """Queue the event for every live subscription to it, in the caller's transaction; return how many."""
    return emit_many(session, event, [payload], now=now)


def emit_many(
    session: Session, event: str, payloads: Sequence[dict[str, Any]], *, now: datetime | None = None
) -> int:
    """Queue one event per payload for every live subscription to it, in the caller's transaction:
    the subscriptions are read once, and the rows are written in one INSERT per chunk (the nightly
    segment refresh emits thousands at once); return how many rows."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")  # a programming error, not input
    if not payloads:
        return 0
    now = now or utcnow()
    subscriptions = [
        subscription.id
        for subscription in session.scalars(
            select(WebhookSubscription).where(WebhookSubscription.disabled_at.is_(None))
        )
        if event in subscription.events
    ]
    rows = []
    for subscription_id in subscriptions:
        for payload in payloads:
            event_id = "evt_" + secrets.token_hex(16)
            envelope = {"id": event_id, "type": event, "created": _iso(now), "data": payload}
            rows.append(
                {
                    "subscription_id": subscription_id,
                    "customer_id": payload.get("customer_id"),
                    "event": event,
                    "event_id": event_id,
                    "payload": envelope,
                    "status": WebhookStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    for start in range(0, len(rows), EMIT_CHUNK):
        session.execute(insert(WebhookDelivery), rows[start : start + EMIT_CHUNK])
    return len(rows)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed (and signed)."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `CareLoop-Signature` header's value for this body at this time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """What a receiver does: the header's HMAC matches and its time is at most `tolerance` seconds old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try: doubling from 30 s, at most an hour."""
    return min(FIRST_RETRY * int(2 ** max(attempts - 1, 0)), LONGEST_RETRY)


def gives_up(attempts: int) -> bool:
    """Whether `attempts` failed tries have used up the day of retries."""
    return sum((retry_delay(n) for n in range(1, attempts + 1)), timedelta()) >= RETRY_FOR


def resend(*, session: Session, delivery_id: int, agent_id: int, now: datetime | None = None) -> None:
    """Send a delivery again at the scheduler's next run, with a fresh day of retries."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise LookupError(delivery_id)
    delivery.status = WebhookStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now or utcnow()
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action="webhook_resent",
        entity="webhook_delivery",
        entity_id=delivery.id,
        details={"event_id": delivery.event_id},
    )


def list_subscriptions(*, session: Session) -> list[SubscriptionRow]:
    """Every subscription, live ones first, newest first."""
    rows = session.scalars(
        select(WebhookSubscription).order_by(
            WebhookSubscription.disabled_at.is_not(None), WebhookSubscription.id.desc()
        )
    )
    return [_subscription_row(session, row) for row in rows]


def recent_deliveries(*, session: Session, limit: int = 50) -> list[DeliveryRow]:
    """The delivery log: the newest deliveries first."""
    rows = session.execute(
        select(WebhookDelivery, WebhookSubscription.url)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return [
        DeliveryRow(
            id=d.id,
            subscription_id=d.subscription_id,
            url=url,
            event=d.event,
            event_id=d.event_id,
            status=d.status.value,
            attempts=d.attempts,
            last_status=d.last_status,
            last_error=d.last_error,
            created_at=d.created_at,
            next_attempt_at=d.next_attempt_at,
            delivered_at=d.delivered_at,
        )
        for d, url in rows
    ]


def _subscription_row(session: Session, subscription: WebhookSubscription) -> SubscriptionRow:
    creator = session.get(Agent, subscription.created_by_id) if subscription.created_by_id else None
    return SubscriptionRow(
        id=subscription.id,
        url=subscription.url,
        events=list(subscription.events),
        created_by=creator.display_name if creator else None,
        created_at=subscription.created_at,
        disabled_at=subscription.disabled_at,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def customer_ref(customer: Customer) -> dict[str, Any]:
    """The customer as a receiver knows them: our id and the shop's own (`external_id`), if any."""
    return {"customer_id": customer.id, "customer_external_id": customer.external_id}


def when(moment: datetime | None) -> str | None:
    """A time in a payload: ISO 8601 UTC with a Z."""
    return _iso(moment) if moment is not None else None
