"""The history of a complaint case: one row per change, written where the change is made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.crm.models import CaseEvent, CaseEventKind, Complaint, utcnow


def record_event(
    *,
    session: Session,
    complaint: Complaint,
    kind: CaseEventKind,
    actor: str,
    agent_id: int | None = None,
    from_value: str | None = None,
    to_value: str | None = None,
    text: str | None = None,
    now: datetime | None = None,
) -> CaseEvent:
    """Add a line to the case's history (the caller changes the case itself)."""
    event = CaseEvent(
        complaint_id=complaint.id,
        kind=kind,
        actor=actor[:60],
        agent_id=agent_id,
        from_value=from_value,
        to_value=to_value,
        text=text,
        created_at=now or utcnow(),
    )
    session.add(event)
    session.flush()
    return event
