"""CSAT answers; an unhappy score opens a recovery case first (docs/architecture.md: the unhappy first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import churn, webhooks
from bot.crm.complaints import case_payload, sla_due
from bot.crm.feedback import file_feedback
from bot.crm.models import (
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Conversation,
    Customer,
    FeedbackSource,
    Severity,
    Survey,
    utcnow,
)
from bot.crm.queries import log_interaction

LOW_SCORE = 2  # 1 or 2 out of 5 is a customer to win back
COMMENT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Rated:
    survey: Survey
    recovery_case: Complaint | None


def record_rating(
    *,
    session: Session,
    customer: Customer,
    score: int,
    conversation: Conversation | None = None,
    complaint_id: int | None = None,
    handoff_id: int | None = None,
    now: datetime | None = None,
) -> Rated:
    """Store a 1–5 score; a low one opens a high-priority service case."""
    if not 1 <= score <= 5:
        raise ValueError(f"CSAT score must be 1-5, got {score}")
    now = now or utcnow()
    survey = Survey(
        customer_id=customer.id,
        conversation_id=conversation.id if conversation else None,
        complaint_id=complaint_id,
        handoff_id=handoff_id,
        score=score,
        created_at=now,
    )
    session.add(survey)
    case = None
    if score <= LOW_SCORE:
        case = Complaint(
            customer_id=customer.id,
            conversation_id=survey.conversation_id,
            category=ComplaintCategory.SERVICE,
            severity=Severity.HIGH,
            team="customer_care",
            status=ComplaintStatus.OPEN,
            description=f"Recovery: the customer rated us {score}/5.",
            sla_due_at=sla_due(severity=Severity.HIGH, segment=customer.segment, now=now),
            created_at=now,
        )
        session.add(case)
    session.flush()
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="csat",
        intent="rate",
        data={"score": score, "survey_id": survey.id, "recovery_case": case.id if case else None},
        now=now,
    )
    rated = {
        **webhooks.customer_ref(customer),
        "survey_id": survey.id,
        "score": score,
        "complaint_id": complaint_id,
        "handoff_id": handoff_id,
        "recovery_complaint_id": case.id if case else None,
    }
    webhooks.emit(session, "survey.rated", rated, now=now)
    if case is not None:
        webhooks.emit(session, "complaint.opened", case_payload(customer, case), now=now)
    churn.refresh_customer(session=session, customer_id=customer.id, now=now)
    return Rated(survey=survey, recovery_case=case)


def record_comment(
    *,
    session: Session,
    customer: Customer,
    comment: str,
    conversation: Conversation | None = None,
    now: datetime | None = None,
) -> Survey:
    """Attach a comment to the customer's rating from the last hour, or store it as feedback on its own."""
    now = now or utcnow()
    recent = session.scalar(
        select(Survey)
        .where(
            Survey.customer_id == customer.id,
            Survey.created_at >= now - COMMENT_WINDOW,
            Survey.comment.is_(None),
        )
        .order_by(Survey.id.desc())
    )
    survey = recent or Survey(
        customer_id=customer.id, conversation_id=conversation.id if conversation else None, created_at=now
    )
    survey.comment = comment[:2000]
    session.add(survey)
    session.flush()
    # The words land on the Feedback page, where a person owns them (the bot says the team reads them).
    file_feedback(
        session=session,
        customer_id=customer.id,
        source=FeedbackSource.FEEDBACK if survey.score is None else FeedbackSource.RATING_COMMENT,
        text=survey.comment,
        conversation_id=survey.conversation_id,
        survey_id=survey.id,
        score=survey.score,
        now=now,
    )
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="feedback",
        intent="give_feedback",
        data={"survey_id": survey.id, "with_rating": recent is not None},
        now=now,
    )
    return survey
