"""Handing a conversation to a person, with a priority that puts urgent, valuable customers first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Conversation,
    Customer,
    Handoff,
    HandoffStatus,
    Segment,
    Severity,
    Temperament,
    utcnow,
)
from bot.crm.queries import log_interaction

SEGMENT_WEIGHT = {Segment.MVC: 40, Segment.MCC: 25, Segment.STANDARD: 10, Segment.BZ: 0}
SEVERITY_WEIGHT = {Severity.HIGH: 30, Severity.MEDIUM: 15, Severity.LOW: 0}
REASON_WEIGHT = {"complaint": 10, "retention": 20, "low_csat": 20, "fallback": 5, "customer_request": 5}


def priority(*, segment: Segment, severity: Severity | None, reason: str, temperament: Temperament) -> int:
    """Higher is more urgent; waiting time is added by the queue when it sorts."""
    score = SEGMENT_WEIGHT[segment] + REASON_WEIGHT.get(reason, 0)
    score += SEVERITY_WEIGHT[severity] if severity else 0
    return score + (10 if temperament is Temperament.IRRITABLE else 0)


def open_handoff(
    *,
    session: Session,
    customer: Customer,
    conversation: Conversation,
    reason: str,
    severity: Severity | None = None,
    now: datetime | None = None,
) -> tuple[Handoff, bool]:
    """Queue the conversation for a person, once; return (handoff, created)."""
    existing = session.scalar(
        select(Handoff).where(
            Handoff.conversation_id == conversation.id,
            Handoff.status.in_((HandoffStatus.QUEUED, HandoffStatus.CLAIMED)),
        )
    )
    if existing is not None:
        return existing, False
    now = now or utcnow()
    handoff = Handoff(
        conversation_id=conversation.id,
        customer_id=customer.id,
        reason=reason,
        status=HandoffStatus.QUEUED,
        priority=priority(
            segment=customer.segment, severity=severity, reason=reason, temperament=customer.temperament
        ),
        requested_at=now,
    )
    session.add(handoff)
    session.flush()
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="handoff_requested",
        data={"handoff_id": handoff.id, "reason": reason, "priority": handoff.priority},
        now=now,
    )
    return handoff, True


def queue_position(*, session: Session, handoff: Handoff) -> int:
    """How many queued conversations are ahead of this one (by priority, then waiting time)."""
    ahead = session.scalars(
        select(Handoff.id).where(
            Handoff.status == HandoffStatus.QUEUED,
            Handoff.id != handoff.id,
            (Handoff.priority > handoff.priority)
            | ((Handoff.priority == handoff.priority) & (Handoff.requested_at < handoff.requested_at)),
        )
    ).all()
    return len(ahead)
