"""Working complaint cases: each case's history, and which teams an agent works in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
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


class CaseAlert(Base):
    """One step the SLA clock took on a case (at risk, late, breached), once per case, round and
    state: its unique key is what makes the scheduler's walk idempotent."""

    __tablename__ = "case_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # sla:complaint:<id>:round:<n>:<state>
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)  # 0 from filing, +1 at each reopening
    state: Mapped[str] = mapped_column(String(24))  # at_risk | late | breached
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notice(Base):
    """A notice for one console user, shown until they mark it read (it survives a reload)."""

    __tablename__ = "notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agent.id", ondelete="CASCADE"), index=True)
    complaint_id: Mapped[int | None] = mapped_column(
        ForeignKey("complaint.id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("case_alert.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)  # case number, team, times: no customer data
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
