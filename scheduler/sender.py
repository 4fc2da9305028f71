"""Send due deliveries through the gateway, exactly once per idempotency key, behind the policy gate.

A delivery is claimed with one atomic UPDATE (queued → sending), so two scheduler processes never
both send it; the gateway call carries the delivery's idempotency key, so a crash after the call
and before recording it is replayed by the gateway, not re-sent. A claim older than `stale_after`
belongs to a process that died and is taken over. The claim is also the delivery's place in the
weekly cap: it is decided under the customer's lock (scheduler/policy.py), and the gateway may
still refuse a send past the cap (429 frequency_cap), which is recorded as a skip.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import rows_changed
from bot.crm.models import (
    Campaign,
    CampaignStatus,
    Complaint,
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OutreachKind,
)
from scheduler.policy import INTENT_FOR, Outcome, Policy, decide, lock_customer
from scheduler.states import DelayReason, SenderOutcome, SendStatus, SkipReason

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
PAUSED_RECHECK = timedelta(minutes=5)


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    detail: str | None = None


class Gateway(Protocol):
    def send(self, *, customer_id: int, intent: str, entities: dict[str, object], key: str) -> SendResult: ...


class HttpGateway:
    """The gateway's internal proactive endpoint."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "X-CareLoop-Actor": "scheduler"},
            timeout=timeout,
        )

    def send(self, *, customer_id: int, intent: str, entities: dict[str, object], key: str) -> SendResult:
        body = {"customer_id": customer_id, "intent": intent, "entities": entities, "idempotency_key": key}
        try:
            response = self._client.post("/internal/proactive", json=body)
        except httpx.HTTPError as error:
            return SendResult(SendStatus.RETRY, type(error).__name__)
        if response.status_code == 200:
            return SendResult(SendStatus.SENT)
        if response.status_code in (404, 409, 410):
            return SendResult(SendStatus.UNREACHABLE, _error_code(response))
        if response.status_code == 429 and _error_code(response) == "frequency_cap":
            return SendResult(SendStatus.CAPPED, "frequency_cap")
        return SendResult(SendStatus.RETRY, f"{response.status_code} {_error_code(response)}")

    def close(self) -> None:
        self._client.close()


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:100]
    except ValueError:
        return ""


def due(*, session: Session, now: datetime, stale_after: timedelta, limit: int) -> list[int]:
    """Deliveries that should go now: queued and due, or claimed by a process that died."""
    return list(
        session.scalars(
            select(Delivery.id)
            .where(
                or_(
                    (Delivery.status == DeliveryStatus.QUEUED) & (Delivery.scheduled_for <= now),
                    (Delivery.status == DeliveryStatus.SENDING)
                    & (Delivery.scheduled_for <= now - stale_after),
                )
            )
            .order_by(Delivery.scheduled_for, Delivery.id)
            .limit(limit)
        )
    )


def claim(*, session: Session, delivery_id: int, now: datetime, stale_after: timedelta) -> bool:
    """Take the delivery for this process; False if another process has it."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .where(
            or_(
                Delivery.status == DeliveryStatus.QUEUED,
                (Delivery.status == DeliveryStatus.SENDING) & (Delivery.scheduled_for <= now - stale_after),
            )
        )
        .values(status=DeliveryStatus.SENDING, scheduled_for=now, attempts=Delivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result) == 1


def still_relevant(*, session: Session, delivery: Delivery, now: datetime) -> tuple[bool, datetime | None]:
    """A revisit waits for its case to be resolved, and is dropped once the loop is closed; a
    question about a case is dropped once the case no longer waits for the answer; so is a delivery
    check about an order the customer has complained about (they told us it is not alright)."""
    if delivery.kind is OutreachKind.DELIVERY_CHECK:
        return not _complained_about(session, str((delivery.payload or {}).get("order_id", ""))), None
    if delivery.kind is OutreachKind.CASE_UPDATE and ":question:" in delivery.idempotency_key:
        case = session.get(Complaint, delivery.complaint_id) if delivery.complaint_id else None
        return case is not None and case.status is ComplaintStatus.WAITING_ON_CUSTOMER, None
    if delivery.kind is not OutreachKind.COMPLAINT_FOLLOWUP or delivery.complaint_id is None:
        return True, None
    complaint = session.get(Complaint, delivery.complaint_id)
    if (
        complaint is None
        or complaint.followup_done_at is not None
        or complaint.status is ComplaintStatus.CLOSED
    ):
        return False, None
    if complaint.status is not ComplaintStatus.RESOLVED:
        return False, now + timedelta(days=1)  # not fixed yet: look again tomorrow
    return True, None


def _complained_about(session: Session, order_number: str) -> bool:
    """Whether any case names this order (by its number, as the delivery check's payload carries it)."""
    return (
        session.scalar(
            select(Complaint.id)
            .join(Order, Order.id == Complaint.order_id)
            .where(Order.number == order_number)
            .limit(1)
        )
        is not None
    )


class Sender:
    def __init__(
        self,
        factory: sessionmaker[Session],
        gateway: Gateway,
        policy: Policy,
        *,
        clock: Callable[[], datetime],
        rate_per_second: float = 25.0,
        stale_after: timedelta = timedelta(minutes=5),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.factory, self.gateway, self.policy, self.clock = factory, gateway, policy, clock
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self.stale_after, self.sleep = stale_after, sleep

    def run_due(self, limit: int = 500) -> Counter[str]:
        """Send (or skip, or delay) everything due now; return what happened."""
        with self.factory() as session:
            ids = due(session=session, now=self.clock(), stale_after=self.stale_after, limit=limit)
        outcomes: Counter[str] = Counter()
        for delivery_id in ids:
            outcome = self.process(delivery_id)
            outcomes[outcome.value] += 1
            if outcome is SenderOutcome.SENT and self.interval:
                self.sleep(self.interval)  # the channel's broadcast rate (Telegram: ~30/s per bot)
        return outcomes

    def process(self, delivery_id: int) -> SenderOutcome:
        now = self.clock()
        with self.factory.begin() as session:
            if not claim(session=session, delivery_id=delivery_id, now=now, stale_after=self.stale_after):
                return SenderOutcome.TAKEN
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None
            verdict = self._verdict(session, delivery, now)
            if verdict is not None:
                return verdict
            request = (
                delivery.customer_id,
                INTENT_FOR[delivery.kind],
                dict(delivery.payload or {}),
                delivery.idempotency_key,
            )
        customer_id, intent, entities, key = request
        result = self.gateway.send(customer_id=customer_id, intent=intent, entities=entities, key=key)
        with self.factory.begin() as session:
            return self._record(session, delivery_id, result, self.clock())

    def _verdict(self, session: Session, delivery: Delivery, now: datetime) -> SenderOutcome | None:
        campaign = session.get(Campaign, delivery.campaign_id) if delivery.campaign_id else None
        if campaign is not None and campaign.status is CampaignStatus.PAUSED:
            delivery.status, delivery.scheduled_for = DeliveryStatus.QUEUED, now + PAUSED_RECHECK
            delivery.skip_reason = DelayReason.CAMPAIGN_PAUSED  # why it waits, for the campaign page
            return SenderOutcome.HELD
        if campaign is not None and campaign.status is CampaignStatus.CANCELLED:
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, SkipReason.CAMPAIGN_CANCELLED
            return SenderOutcome.SKIPPED
        relevant, later = still_relevant(session=session, delivery=delivery, now=now)
        if not relevant:
            if later is not None:
                delivery.status, delivery.scheduled_for = DeliveryStatus.QUEUED, later
                return SenderOutcome.WAITING
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, SkipReason.NOT_NEEDED
            return SenderOutcome.SKIPPED
        customer = session.get(Customer, delivery.customer_id)
        assert customer is not None
        lock_customer(session=session, customer_id=customer.id)
        verdict = decide(
            session=session,
            customer=customer,
            kind=delivery.kind,
            now=now,
            policy=self.policy,
            delivery_id=delivery.id,
        )
        if verdict.outcome is Outcome.SKIP:
            delivery.status, delivery.skip_reason = DeliveryStatus.SKIPPED, verdict.reason
            return SenderOutcome.SKIPPED
        if verdict.outcome is Outcome.DELAY:
            # Every delay names its time (policy.decide); one without would be tried again now.
            delivery.status, delivery.scheduled_for = DeliveryStatus.QUEUED, verdict.until or now
            delivery.skip_reason = verdict.reason  # why it waits (quiet_hours), for the campaign page
            return SenderOutcome.DELAYED
        return None

    @staticmethod
    def _record(session: Session, delivery_id: int, result: SendResult, now: datetime) -> SenderOutcome:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        if result.status == SendStatus.SENT:
            delivery.status, delivery.sent_at, delivery.error = DeliveryStatus.SENT, now, None
            delivery.skip_reason = None
            return SenderOutcome.SENT
        if result.status in (SendStatus.UNREACHABLE, SendStatus.CAPPED):
            delivery.status = DeliveryStatus.SKIPPED
            capped = result.status == SendStatus.CAPPED
            delivery.skip_reason = SkipReason.FREQUENCY_CAP if capped else SkipReason.UNREACHABLE
            return SenderOutcome.SKIPPED
        delivery.error = result.detail
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            log.warning("delivery %s failed after %s attempts", delivery.id, delivery.attempts)
            return SenderOutcome.FAILED
        delivery.status = DeliveryStatus.QUEUED
        delivery.scheduled_for = now + timedelta(minutes=2**delivery.attempts)  # back off: 2, 4, 8, … minutes
        return SenderOutcome.RETRY
