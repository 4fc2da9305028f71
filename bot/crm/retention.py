"""The retention save: choose the offer that fits the reason and the customer, record every attempt."""

from __future__ import annotations

import calendar
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import churn, webhooks
from bot.crm.catalogue import limit_of
from bot.crm.feedback import file_feedback
from bot.crm.models import (
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    FeedbackSource,
    LeaveReason,
    Offer,
    OfferKind,
    OutreachKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from bot.crm.queries import log_interaction, record_audit

COSTLY = (OfferKind.DISCOUNT, OfferKind.PRICE_MATCH)
MAX_ATTEMPTS = 2  # one offer, at most one different second offer, then the no is respected
WIN_BACK_AFTER = timedelta(weeks=6)


@dataclass(frozen=True)
class Situation:
    """Who is leaving: what the bot looks at before asking what would keep them."""

    subscription: Subscription | None
    tenure_months: int
    open_complaints: int
    past_saves: int  # attempts they accepted before


def active_subscription(*, session: Session, customer_id: int) -> Subscription | None:
    return session.scalar(
        select(Subscription)
        .where(Subscription.customer_id == customer_id, Subscription.status == SubscriptionStatus.ACTIVE)
        .order_by(Subscription.started_at.desc())
    )


def situation(*, session: Session, customer: Customer, open_complaints: int, now: datetime) -> Situation:
    subscription = active_subscription(session=session, customer_id=customer.id)
    since = subscription.started_at if subscription else customer.created_at
    saves = session.scalar(
        select(func.count(RetentionAttempt.id)).where(
            RetentionAttempt.customer_id == customer.id, RetentionAttempt.outcome == RetentionOutcome.ACCEPTED
        )
    )
    return Situation(
        subscription=subscription,
        tenure_months=max(0, (now - since).days // 30),
        open_complaints=open_complaints,
        past_saves=int(saves or 0),
    )


def choose_offer(
    *,
    session: Session,
    reason: LeaveReason,
    segment: Segment,
    exclude: AbstractSet[int] = frozenset(),
    exclude_kinds: AbstractSet[OfferKind] = frozenset(),
    customer_id: int | None = None,
    now: datetime | None = None,
) -> Offer | None:
    """The best untried offer for this reason and segment: segment-specific first, then by rank.

    Below-zero customers are never offered anything costly (discounts and price matches are for
    customers the business earns on); they may still get a cheaper plan, a pause or a fix. With a
    customer, an offer they have accepted as often as its limit allows within its period is skipped.
    """
    candidates = session.scalars(
        select(Offer)
        .where(Offer.active.is_(True), Offer.reason == reason)
        .where((Offer.segment == segment) | Offer.segment.is_(None))
        .order_by(Offer.rank, Offer.segment.is_(None), Offer.id)
    ).all()
    for offer in candidates:
        if offer.id in exclude or offer.kind in exclude_kinds:
            continue
        if segment is Segment.BZ and offer.kind in COSTLY:
            continue
        if customer_id is not None and at_limit(
            session=session, offer=offer, customer_id=customer_id, now=now or utcnow()
        ):
            continue
        return offer
    return None


def at_limit(*, session: Session, offer: Offer, customer_id: int, now: datetime) -> bool:
    """Whether the customer has accepted this offer as often as the catalogue allows in its period."""
    limit = limit_of(offer)
    since = now - timedelta(days=limit.days)
    accepted = session.scalar(
        select(func.count(RetentionAttempt.id)).where(
            RetentionAttempt.customer_id == customer_id,
            RetentionAttempt.offer_id == offer.id,
            RetentionAttempt.outcome == RetentionOutcome.ACCEPTED,
            RetentionAttempt.decided_at >= since,
        )
    )
    return int(accepted or 0) >= limit.times


def attempts_in(
    *, session: Session, conversation_id: int | None, customer_id: int, since: datetime
) -> list[RetentionAttempt]:
    """This save conversation's attempts so far, oldest first."""
    query = select(RetentionAttempt).where(
        RetentionAttempt.customer_id == customer_id, RetentionAttempt.created_at >= since
    )
    if conversation_id is not None:
        query = query.where(RetentionAttempt.conversation_id == conversation_id)
    return list(session.scalars(query.order_by(RetentionAttempt.id)))


def record_offer(
    *,
    session: Session,
    customer: Customer,
    reason: LeaveReason,
    offer: Offer | None,
    attempt_no: int,
    conversation: Conversation | None,
    now: datetime | None = None,
) -> RetentionAttempt:
    """Record that an offer was made (outcome pending until the customer answers)."""
    now = now or utcnow()
    subscription = active_subscription(session=session, customer_id=customer.id)
    attempt = RetentionAttempt(
        customer_id=customer.id,
        conversation_id=conversation.id if conversation else None,
        subscription_id=subscription.id if subscription else None,
        reason=reason,
        offer_id=offer.id if offer else None,
        attempt_no=attempt_no,
        outcome=RetentionOutcome.PENDING,
        created_at=now,
    )
    session.add(attempt)
    session.flush()
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="retention_offer",
        data={
            "attempt_id": attempt.id,
            "reason": reason.value,
            "offer": offer.code if offer else None,
            "attempt_no": attempt_no,
        },
        now=now,
    )
    return attempt


def decide(
    *,
    session: Session,
    attempt: RetentionAttempt,
    accepted: bool,
    customer: Customer,
    conversation: Conversation | None,
    now: datetime | None = None,
    because: LeaveReason | None = None,
) -> None:
    """Record the customer's answer to an offer (and, for a no, the reason it gave, if any)."""
    now = now or utcnow()
    attempt.outcome = RetentionOutcome.ACCEPTED if accepted else RetentionOutcome.DECLINED
    attempt.decided_at = now
    data: dict[str, object] = {"attempt_id": attempt.id}
    if because is not None:
        data["because"] = because.value
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="retention_accepted" if accepted else "retention_declined",
        data=data,
        now=now,
    )
    if accepted:
        offer = session.get(Offer, attempt.offer_id) if attempt.offer_id else None
        saved = {
            **webhooks.customer_ref(customer),
            "attempt_id": attempt.id,
            "subscription_id": attempt.subscription_id,
            "reason": attempt.reason.value if attempt.reason else None,
            "offer": offer.code if offer else None,
        }
        webhooks.emit(session, "retention.saved", saved, now=now)


def record_exit_answer(
    *,
    session: Session,
    customer: Customer,
    conversation: Conversation | None,
    attempts: list[RetentionAttempt],
    answer: str,
    now: datetime | None = None,
) -> None:
    """Keep the leaving customer's answer to the exit question with their last save attempt, and
    put it on the Feedback page."""
    if attempts:
        attempts[-1].exit_answer = answer[:2000]
    last = attempts[-1] if attempts else None
    file_feedback(
        session=session,
        customer_id=customer.id,
        source=FeedbackSource.EXIT_ANSWER,
        text=answer,
        conversation_id=conversation.id if conversation else None,
        retention_attempt_id=last.id if last else None,
        leave_reason=last.reason.value if last and last.reason else None,
        now=now,
    )
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="exit_answer",
        data={"attempt_id": attempts[-1].id if attempts else None},
        now=now,
    )


def record_cancellation(
    *, session: Session, customer: Customer, conversation: Conversation | None, now: datetime | None = None
) -> Delivery:
    """The no is respected: mark the cancellation requested and plan a caring win-back check-in."""
    now = now or utcnow()
    subscription = active_subscription(session=session, customer_id=customer.id)
    if subscription is not None:
        subscription.status = SubscriptionStatus.CANCEL_REQUESTED
        subscription.cancel_requested_at = now
    key = f"win_back:customer:{customer.id}:{now.date().isoformat()}"
    # One win-back at a time: asking to cancel again (another day) keeps the one already planned.
    delivery = session.scalar(
        select(Delivery)
        .where(
            Delivery.customer_id == customer.id,
            Delivery.kind == OutreachKind.WIN_BACK,
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    ) or session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    if delivery is None:
        delivery = Delivery(
            idempotency_key=key,
            kind=OutreachKind.WIN_BACK,
            customer_id=customer.id,
            status=DeliveryStatus.QUEUED,
            scheduled_for=now + WIN_BACK_AFTER,
            created_at=now,
        )
        session.add(delivery)
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="cancellation_requested",
        data={"subscription_id": subscription.id if subscription else None},
        now=now,
    )
    _emit_cancellation(session, customer, subscription, now)
    session.flush()
    churn.refresh_customer(session=session, customer_id=customer.id, now=now)
    return delivery


def _emit_cancellation(
    session: Session, customer: Customer, subscription: Subscription | None, now: datetime
) -> None:
    """Tell the webhooks: the save was lost, and the subscription (if any) is to be cancelled."""
    refs = {
        **webhooks.customer_ref(customer),
        "subscription_id": subscription.id if subscription else None,
        "subscription_external_id": subscription.external_id if subscription else None,
    }
    webhooks.emit(session, "retention.lost", refs, now=now)
    if subscription is not None:
        requested = {**refs, "status": subscription.status.value, "cancel_requested_at": webhooks.when(now)}
        webhooks.emit(session, "subscription.cancel_requested", requested, now=now)


def billing_month_end(started_at: datetime, at: datetime) -> datetime:
    """The first monthly anniversary of `started_at` after `at`: when a cancellation asked at `at` ends.

    A plan started on the 31st renews on the last day of shorter months."""
    months = (at.year - started_at.year) * 12 + at.month - started_at.month
    end = _months_after(started_at, months)
    while end <= at:
        months += 1
        end = _months_after(started_at, months)
    return end


def _months_after(start: datetime, months: int) -> datetime:
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def end_due_cancellations(*, session: Session, now: datetime) -> int:
    """Cancel the memberships whose billing month ended since the customer asked; return how many.

    What the bot and the confirmation mail promise ("it takes effect at the end of your current
    billing month") happens here; a customer who took an offer or resumed in between is ACTIVE again
    and is not touched."""
    ended: list[int] = []
    for subscription in session.scalars(
        select(Subscription).where(Subscription.status == SubscriptionStatus.CANCEL_REQUESTED)
    ):
        asked = subscription.cancel_requested_at or now
        end = billing_month_end(subscription.started_at, asked)
        if end > now:
            continue
        subscription.status = SubscriptionStatus.CANCELLED
        subscription.cancelled_at = end
        # An audit entry, not an interaction: the customer did nothing today, so their last contact stays.
        record_audit(
            session=session,
            actor="scheduler",
            action="cancellation_took_effect",
            entity="subscription",
            entity_id=subscription.id,
            details={"customer_id": subscription.customer_id, "ended_at": end.isoformat()},
        )
        ended.append(subscription.customer_id)
    session.flush()
    churn.refresh_customers(session=session, customer_ids=ended, now=now)
    return len(ended)


def apply_offer(
    *, session: Session, customer: Customer, offer: Offer, now: datetime | None = None
) -> str | None:
    """Carry out an accepted offer on the subscription; return what a person must still do, if anything."""
    now = now or utcnow()
    subscription = active_subscription(session=session, customer_id=customer.id)
    todo = None
    if offer.kind is OfferKind.CHEAPER_PLAN and subscription is not None:
        basic = session.scalar(select(Product).where(Product.sku == "PLAN-BASIC"))
        if basic is not None:
            subscription.product_id, subscription.monthly_price = basic.id, basic.price
    elif offer.kind is OfferKind.PAUSE and subscription is not None:
        subscription.status = SubscriptionStatus.PAUSED
    elif offer.kind in (OfferKind.FIX_FIRST, OfferKind.PERSONAL_CALL, OfferKind.PRICE_MATCH):
        todo = offer.kind.value  # a person follows up
    record_audit(
        session=session,
        actor="bot",
        action="retention_offer_applied",
        entity="customer",
        entity_id=customer.id,
        details={
            "offer": offer.code,
            "subscription_id": subscription.id if subscription else None,
            "at": now.isoformat(),
        },
    )
    session.flush()
    churn.refresh_customer(session=session, customer_id=customer.id, now=now)
    return todo
