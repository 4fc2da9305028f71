"""The business rules of care: severity, SLA, offers by reason × segment, refund policy, temperament."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import refunds, retention, temperament
from bot.crm.catalogue import seed_catalogue
from bot.crm.complaints import file_complaint, resolve_complaint, severity_for, sla_due
from bot.crm.consent import set_consent
from bot.crm.handoffs import CHURN_RISK_WEIGHT, open_handoff, priority, queue_position
from bot.crm.models import (
    AuditLog,
    ComplaintCategory,
    ConsentPurpose,
    Delivery,
    InteractionEvent,
    LeaveReason,
    OfferKind,
    OrderStatus,
    RefundStatus,
    Segment,
    Severity,
    Temperament,
)
from bot.crm.queries import consent_of, ensure_conversation
from bot.crm.surveys import record_comment, record_rating
from tests.factories import NOW, make_customer, make_order

C = ComplaintCategory


@pytest.mark.parametrize(
    ("category", "angry", "repeat", "value", "expected"),
    [
        (C.DELIVERY, False, False, 30.0, Severity.LOW),
        (C.DELIVERY, True, False, 30.0, Severity.MEDIUM),
        (C.DELIVERY, False, True, 30.0, Severity.MEDIUM),
        (C.BILLING, False, False, None, Severity.MEDIUM),
        (C.DELIVERY, True, True, 30.0, Severity.HIGH),
        (C.BILLING, True, False, None, Severity.HIGH),
        (C.PRODUCT_QUALITY, True, False, 499.0, Severity.HIGH),
        (C.PRODUCT_QUALITY, False, False, 149.99, Severity.LOW),
        (C.PRODUCT_QUALITY, False, False, 150.0, Severity.MEDIUM),
    ],
)
def test_severity_from_cues(
    category: C, angry: bool, repeat: bool, value: float | None, expected: Severity
) -> None:
    assert severity_for(category=category, angry=angry, repeat=repeat, order_value=value) is expected


@pytest.mark.parametrize(
    ("severity", "segment", "hours"),
    [
        (Severity.HIGH, Segment.MVC, 2),
        (Severity.HIGH, Segment.STANDARD, 4),
        (Severity.MEDIUM, Segment.MCC, 18),
        (Severity.MEDIUM, Segment.BZ, 24),
        (Severity.LOW, Segment.STANDARD, 72),
        (Severity.LOW, Segment.MVC, 36),
    ],
)
def test_sla_depends_on_severity_and_segment(severity: Severity, segment: Segment, hours: int) -> None:
    assert sla_due(severity=severity, segment=segment, now=NOW) == NOW + timedelta(hours=hours)


def test_filing_routes_plans_the_revisit_and_detects_a_repeat(session: Session) -> None:
    customer = make_customer(session, segment=Segment.STANDARD)
    conversation = ensure_conversation(session=session, sender_id="web:filing-1", customer=customer)
    first = file_complaint(
        session=session,
        customer=customer,
        category=C.DELIVERY,
        description="late",
        order=None,
        angry=False,
        conversation=conversation,
        now=NOW,
    )
    assert (first.complaint.team, first.complaint.severity, first.repeat, first.escalate) == (
        "logistics",
        Severity.LOW,
        False,
        False,
    )
    followup = session.scalars(select(Delivery).where(Delivery.complaint_id == first.complaint.id)).one()
    assert followup.idempotency_key == f"complaint_followup:complaint:{first.complaint.id}"
    assert followup.scheduled_for == first.complaint.sla_due_at + timedelta(days=3)

    second = file_complaint(
        session=session,
        customer=customer,
        category=C.BILLING,
        description="charged twice",
        order=None,
        angry=False,
        conversation=conversation,
        now=NOW + timedelta(days=29),
    )
    assert (second.repeat, second.escalate, second.complaint.severity) == (True, True, Severity.MEDIUM)

    resolve_complaint(
        session=session, complaint=first.complaint, resolution="re-sent", now=NOW + timedelta(days=1)
    )
    assert followup.scheduled_for == NOW + timedelta(days=4)  # revisit moves to three days after the fix
    assert (
        session.scalar(select(Delivery.id).where(Delivery.complaint_id == first.complaint.id)) == followup.id
    )


def test_an_mvc_complaint_is_always_escalated(session: Session) -> None:
    vip = make_customer(session, segment=Segment.MVC)
    filed = file_complaint(
        session=session, customer=vip, category=C.OTHER, description="x", order=None, angry=False, now=NOW
    )
    assert filed.escalate and filed.complaint.severity is Severity.LOW


@pytest.fixture
def catalogue(session: Session) -> Session:
    seed_catalogue(session=session, launched_at=NOW - timedelta(days=900))
    return session


@pytest.mark.parametrize(
    ("reason", "segment", "first", "second"),
    [
        (LeaveReason.PRICE, Segment.MVC, "PRICE-MVC-30", "PRICE-MVC-PAUSE"),
        (LeaveReason.PRICE, Segment.MCC, "PRICE-MCC-20", "PRICE-MCC-PAUSE"),
        (LeaveReason.PRICE, Segment.STANDARD, "PRICE-STD-PLAN", "PRICE-STD-PAUSE"),
        (LeaveReason.PRICE, Segment.BZ, "PRICE-BZ-PLAN", "PRICE-BZ-PAUSE"),  # nothing costly for below-zero
        (LeaveReason.QUALITY, Segment.STANDARD, "QUALITY-FIX", "QUALITY-CALL"),
        (LeaveReason.SERVICE, Segment.BZ, "SERVICE-FIX", "SERVICE-CALL"),
        (LeaveReason.COMPETITOR, Segment.MVC, "COMP-PITCH", "COMP-MATCH-MVC"),
        (LeaveReason.COMPETITOR, Segment.STANDARD, "COMP-PITCH", "COMP-PLAN"),  # a match only where allowed
        (LeaveReason.COMPETITOR, Segment.BZ, "COMP-PITCH", "COMP-PLAN"),
        (LeaveReason.NO_LONGER_NEEDED, Segment.STANDARD, "NEED-PAUSE", "NEED-PLAN"),
        (LeaveReason.MOVING, Segment.MCC, "MOVING-ADDR", "MOVING-PAUSE"),
        (LeaveReason.OTHER, Segment.MVC, "OTHER-PAUSE", "OTHER-CALL"),
    ],
)
def test_offer_fits_reason_and_segment(
    catalogue: Session, reason: LeaveReason, segment: Segment, first: str, second: str | None
) -> None:
    offer = retention.choose_offer(session=catalogue, reason=reason, segment=segment)
    assert offer is not None and offer.code == first
    following = retention.choose_offer(session=catalogue, reason=reason, segment=segment, exclude={offer.id})
    assert (following.code if following else None) == second
    if segment is Segment.BZ:
        assert offer.kind not in (OfferKind.DISCOUNT, OfferKind.PRICE_MATCH)


def test_refund_policy(session: Session) -> None:
    customer = make_customer(session)
    now = NOW

    def order(**fields):  # type: ignore[no-untyped-def]
        return make_order(session, customer, **fields)

    fresh = order(total="40.00", delivered_at=now - timedelta(days=29))
    big = order(total="499.00", delivered_at=now - timedelta(days=2))
    old = order(total="40.00", delivered_at=now - timedelta(days=31))
    moving = order(status=OrderStatus.SHIPPED)
    cancelled = order(status=OrderStatus.CANCELLED)

    decision = refunds.request_refund(
        session=session, customer=customer, order=fresh, reason="stale", now=now
    )
    assert decision.eligibility is refunds.Eligibility.ELIGIBLE and decision.refund is not None
    assert decision.refund.status is RefundStatus.APPROVED and decision.refund.amount == Decimal("40.00")
    again = refunds.request_refund(session=session, customer=customer, order=fresh, reason="again", now=now)
    assert again.eligibility is refunds.Eligibility.ALREADY and again.refund is None

    review = refunds.request_refund(session=session, customer=customer, order=big, reason=None, now=now)
    assert review.eligibility is refunds.Eligibility.NEEDS_REVIEW
    assert review.refund is not None and review.refund.status is RefundStatus.REQUESTED

    for unpaid, expected in (
        (old, refunds.Eligibility.TOO_LATE),
        (moving, refunds.Eligibility.NOT_DELIVERED),
        (cancelled, refunds.Eligibility.CANCELLED),
    ):
        result = refunds.request_refund(
            session=session, customer=customer, order=unpaid, reason=None, now=now
        )
        assert (result.eligibility, result.refund) == (expected, None)


def test_consent_change_is_immediate_stored_with_source_and_audited(session: Session) -> None:
    customer = make_customer(session)
    assert set_consent(
        session=session,
        customer=customer,
        purpose=ConsentPurpose.MARKETING,
        granted=True,
        source="signup",
        now=NOW,
    )
    changed = set_consent(
        session=session,
        customer=customer,
        purpose=ConsentPurpose.MARKETING,
        granted=False,
        source="telegram:chat",
        now=NOW + timedelta(hours=1),
    )
    assert changed is True
    assert consent_of(session=session, customer_id=customer.id, purpose=ConsentPurpose.MARKETING) is False
    assert not set_consent(
        session=session, customer=customer, purpose=ConsentPurpose.MARKETING, granted=False, source="web:chat"
    )
    actions = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == customer.id)).all()
    assert actions == ["consent_granted", "consent_withdrawn"]


def test_low_csat_opens_a_recovery_case_and_a_comment_joins_the_rating(session: Session) -> None:
    customer = make_customer(session, segment=Segment.MVC)
    low = record_rating(session=session, customer=customer, score=2, now=NOW)
    assert low.recovery_case is not None and low.recovery_case.severity is Severity.HIGH
    assert low.recovery_case.sla_due_at == NOW + timedelta(hours=2)
    assert record_rating(session=session, customer=customer, score=4, now=NOW).recovery_case is None
    survey = record_comment(
        session=session, customer=customer, comment="slow", now=NOW + timedelta(minutes=5)
    )
    assert survey.score == 4 and survey.comment == "slow"
    with pytest.raises(ValueError):
        record_rating(session=session, customer=customer, score=6)


def test_handoff_priority_puts_valuable_and_urgent_first(session: Session) -> None:
    def p(segment: Segment, severity: Severity | None, temper: Temperament = Temperament.UNKNOWN) -> int:
        return priority(segment=segment, severity=severity, reason="complaint", temperament=temper)

    assert p(Segment.MVC, Severity.LOW) > p(Segment.MCC, Severity.LOW) > p(Segment.STANDARD, Severity.LOW)
    assert p(Segment.STANDARD, Severity.LOW) > p(Segment.BZ, Severity.LOW)
    assert (
        p(Segment.STANDARD, Severity.HIGH) > p(Segment.STANDARD, Severity.MEDIUM) > p(Segment.STANDARD, None)
    )
    assert p(Segment.STANDARD, None, Temperament.IRRITABLE) > p(Segment.STANDARD, None)
    standard, vip = make_customer(session), make_customer(session, segment=Segment.MVC)
    first, created = open_handoff(
        session=session,
        customer=standard,
        conversation=ensure_conversation(session=session, sender_id="web:q-1", customer=standard),
        reason="customer_request",
        now=NOW,
    )
    again, created_again = open_handoff(
        session=session,
        customer=standard,
        conversation=ensure_conversation(session=session, sender_id="web:q-1", customer=standard),
        reason="customer_request",
    )
    assert created and not created_again and again.id == first.id
    urgent, _ = open_handoff(
        session=session,
        customer=vip,
        conversation=ensure_conversation(session=session, sender_id="web:q-2", customer=vip),
        reason="complaint",
        now=NOW + timedelta(minutes=5),
    )
    assert queue_position(session=session, handoff=urgent) == 0
    assert queue_position(session=session, handoff=first) == 1


def test_a_customer_likely_to_leave_is_seen_before_an_equal_one_who_is_not(session: Session) -> None:
    def p(risk: float) -> int:
        return priority(
            segment=Segment.STANDARD,
            severity=None,
            reason="customer_request",
            temperament=Temperament.UNKNOWN,
            churn_risk=risk,
        )

    assert p(0.0) == p(0.29) < p(0.3) < p(0.6) < p(1.0) == p(0.0) + CHURN_RISK_WEIGHT
    steady, leaving = make_customer(session), make_customer(session)
    leaving.churn_risk = 0.8
    handoffs = [
        open_handoff(
            session=session,
            customer=who,
            conversation=ensure_conversation(session=session, sender_id=f"web:risk-{n}", customer=who),
            reason="customer_request",
            now=NOW + timedelta(minutes=n),
        )[0]
        for n, who in enumerate([steady, leaving])
    ]
    assert handoffs[1].priority == handoffs[0].priority + 16  # 0.8 of the weight, 20
    assert queue_position(session=session, handoff=handoffs[1]) == 0  # asked later, seen first


def test_temperament_needs_evidence_and_follows_behaviour(session: Session) -> None:
    customer = make_customer(session)
    conversation = ensure_conversation(session=session, sender_id="web:temper-1", customer=customer)

    def observe(text: str, anger: int = 0) -> Temperament:
        cues = temperament.cues_in(text, anger=anger)
        session.add(
            InteractionEvent(
                customer_id=customer.id,
                conversation_id=conversation.id,
                kind="behaviour",
                data={"cues": cues},
            )
        )
        session.flush()
        return temperament.infer(session=session, customer=customer)

    assert temperament.cues_in("What do you recommend? I'm not sure which one", anger=0) == {"dependent": 3}
    assert observe("which one should I take?") is Temperament.UNKNOWN  # one cue is not a temperament
    assert observe("what do you recommend") is Temperament.UNKNOWN
    assert observe("I'm not sure, can you decide") is Temperament.DEPENDENT
    for _ in range(3):
        observe("THIS IS RIDICULOUS!!", anger=3)
    assert customer.temperament is Temperament.IRRITABLE
