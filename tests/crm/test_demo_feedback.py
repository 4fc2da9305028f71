"""The demo's Feedback page: items in several themes and every state, some owned, two whose
customers were told what changed (sent in the past, so nothing fires on first start), and the exit
answers of the demo's leavers among them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import feedback
from bot.crm.db import make_engine
from bot.crm.demo import load_demo_data
from bot.crm.demo_feedback import FEEDBACK
from bot.crm.feedback import Filters, Viewer
from bot.crm.migrate import upgrade
from bot.crm.models import DeliveryStatus, FeedbackItem, FeedbackSource, FeedbackState, Role


def test_a_newcomer_sees_the_feedback_page_at_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        load_demo_data(session=session, today=date(2026, 11, 23), customers=80)
        session.commit()
        rows = feedback.items(session=session, viewer=Viewer(0, Role.ADMIN), filters=Filters())
        demo = [r for r in rows if r.text in {f.words for f in FEEDBACK}]
        assert len(demo) == len(FEEDBACK)
        assert {r.state for r in demo} == {s.value for s in FeedbackState}
        assert len({r.theme for r in demo}) >= 4 and any(r.owner for r in demo)
        assert len(feedback.by_theme(rows)) >= 4
        told = session.scalars(select(FeedbackItem).where(FeedbackItem.customer_told_at.is_not(None))).all()
        assert len(told) == 2
        for item in told:
            delivery = feedback.delivery_of(session=session, item_id=item.id)
            assert delivery is not None and delivery.status is DeliveryStatus.SENT
        sources = {r.source for r in rows}
        assert sources == {s.value for s in FeedbackSource}
    engine.dispose()
