"""The demo's case desk: every state, a few cases at risk and a few breached, each with a history
that starts with its filing, and the demo logins in teams (a lead among them)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import cases
from bot.crm.cases import Filters
from bot.crm.db import make_engine
from bot.crm.demo import load_demo_data
from bot.crm.demo_cases import CASES
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, CaseEvent, CaseEventKind, Complaint, ComplaintStatus, Role

TODAY = date(2026, 11, 23)
NOW = datetime.combine(TODAY, time(12, 0), tzinfo=timezone.utc)  # the demo's "now"


def test_the_demo_has_cases_in_every_state_some_at_risk_and_breached(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        load_demo_data(session=session, today=TODAY, customers=80)
        session.commit()
        descriptions = [c.words for c in CASES]
        demo = list(session.scalars(select(Complaint).where(Complaint.description.in_(descriptions))))
        assert {c.status for c in demo} == set(ComplaintStatus)
        lead = session.scalar(select(Agent).where(Agent.role == Role.LEAD))
        assert lead is not None
        viewer = cases.viewer_of(session=session, agent_id=lead.id, role=lead.role)
        rows = cases.open_cases(session=session, viewer=viewer, filters=Filters(), now=NOW)
        everyone = cases.Viewer(0, Role.ADMIN, frozenset())
        every_row = cases.open_cases(session=session, viewer=everyone, filters=Filters(), now=NOW)
        clocks = Counter(r.clock for r in every_row if r.summary in descriptions)
        assert clocks["at_risk"] >= 2 and clocks["breached"] >= 1 and clocks["on_time"] >= 1
        assert rows[0].priority == 1  # the reopened case comes first for its team
        for complaint in demo:
            first = session.scalars(
                select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.id)
            ).first()
            assert first is not None and first.kind is CaseEventKind.FILED
    engine.dispose()
