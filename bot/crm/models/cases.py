"""Working complaint cases: each case's history, and which teams an agent works in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow
from .enums import CaseEventKind, Team


class CaseEvent(Base):
    """One line of a case's history: who did what, when, from which value to which."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CaseEventKind] = mapped_column(enum_column(CaseEventKind))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(60))  # "agent:3", "customer", "bot", "system"
    from_value: Mapped[str | None] = mapped_column(String(60))
    to_value: Mapped[str | None] = mapped_column(String(60))
    text: Mapped[str | None] = mapped_column(Text)  # a note, a question, an answer, a resolution
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentTeam(Base):
    """An agent's membership of a team (an agent may work in several)."""

    __tablename__ = "agent_team"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agent.id", ondelete="CASCADE"), primary_key=True)
    team: Mapped[Team] = mapped_column(enum_column(Team), primary_key=True)
