"""The console's home page per role: what needs doing now (agents: the queue and what is overdue;
marketers: campaigns sending, paused or scheduled; admins: also the users), with links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.console import humane
from bot.console.auth import ConsoleUser
from bot.crm import desk as crm_desk
from bot.crm.models import Agent, Campaign, CampaignStatus, HandoffStatus


def summary(session: Session, *, user: ConsoleUser, now: datetime) -> dict[str, Any]:
    """The figures the home page shows this user (only those of the sections their role opens)."""
    found: dict[str, Any] = {}
    if user.may("chats"):
        queue = crm_desk.open_queue(session=session, now=now)
        waiting = [e for e in queue if e.status == HandoffStatus.QUEUED.value]
        flags = [
            humane.urgency(mode=e.mode, requested_at=e.requested_at, callback_by=e.callback_by, now=now).level
            for e in waiting
        ]
        found["chats"] = {
            "waiting": len(waiting),
            "overdue": flags.count("overdue"),
            "due_soon": flags.count("due-soon"),
            "mine": sum(1 for e in queue if e.agent_id == user.id),
            "longest": humane.duration(max((e.wait_seconds for e in waiting), default=0)),
        }
    if user.may("campaigns"):
        counts = dict(
            session.execute(select(Campaign.status, func.count(Campaign.id)).group_by(Campaign.status))
            .tuples()
            .all()
        )
        found["campaigns"] = {
            s.value: counts.get(s, 0)
            for s in (
                CampaignStatus.SENDING,
                CampaignStatus.SCHEDULED,
                CampaignStatus.PAUSED,
                CampaignStatus.DRAFT,
            )
        }
    if user.may("users"):
        found["users"] = session.scalar(select(func.count(Agent.id)).where(Agent.active.is_(True))) or 0
    return found
