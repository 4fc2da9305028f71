"""Console notices: what a person must see (a case at risk, a promise about to be missed), kept
until they mark it read, so that a reload or a closed tab loses nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm.db import rows_changed
from bot.crm.models import Notice, utcnow

SHOWN = 50  # the newest notices a page lists


@dataclass(frozen=True)
class NoticeView:
    id: int
    text: str
    complaint_id: int | None
    created_at: datetime
    read: bool


def unread_count(*, session: Session, agent_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(Notice.id)).where(Notice.agent_id == agent_id, Notice.read_at.is_(None))
        )
        or 0
    )


def notices_of(*, session: Session, agent_id: int, unread_only: bool = False) -> list[NoticeView]:
    """The person's newest notices, unread first."""
    query = select(Notice).where(Notice.agent_id == agent_id)
    if unread_only:
        query = query.where(Notice.read_at.is_(None))
    query = query.order_by(Notice.read_at.is_not(None), Notice.created_at.desc(), Notice.id.desc())
    return [
        NoticeView(n.id, n.text, n.complaint_id, n.created_at, n.read_at is not None)
        for n in session.scalars(query.limit(SHOWN))
    ]


def mark_read(
    *, session: Session, agent_id: int, notice_id: int | None = None, now: datetime | None = None
) -> int:
    """Mark one of the person's notices read (all of them when `notice_id` is None); how many."""
    query = update(Notice).where(Notice.agent_id == agent_id, Notice.read_at.is_(None))
    if notice_id is not None:
        query = query.where(Notice.id == notice_id)
    result = session.execute(
        query.values(read_at=now or utcnow()).execution_options(synchronize_session=False)
    )
    return rows_changed(result)
