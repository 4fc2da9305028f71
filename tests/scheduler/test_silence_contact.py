"""Our own outbound messages never count as the customer's contact: the turn a silence check-in
starts (an EXTERNAL_* intent) logs its events without touching the customer's last contact, so the
quiet spell, and the one check-in per spell, stay as they were."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Delivery, OutreachKind, Segment
from bot.crm.queries import log_interaction
from scheduler.checkins import drift
from tests.factories import NOW, make_customer, make_order


def test_our_check_in_does_not_reset_the_customers_last_contact(session: Session) -> None:
    quiet_since = NOW - timedelta(days=61)
    customer = make_customer(session, segment=Segment.STANDARD, last_contact_at=quiet_since)
    make_order(session, customer, days_ago=400)
    assert drift(session=session, now=NOW)["drift_checkin"] == 1

    # The check-in reaches them: the bot's turn for EXTERNAL_silence logs what it observed (as
    # bot/actions/base.observe does for every turn), and they do not answer.
    log_interaction(
        session=session,
        customer=customer,
        kind="behaviour",
        intent="EXTERNAL_silence",
        now=NOW + timedelta(hours=1),
    )
    assert customer.last_contact_at == quiet_since
    # Two months on, still the same quiet spell: no second check-in for the same silence.
    assert drift(session=session, now=NOW + timedelta(days=61))["drift_checkin"] == 0

    # They write back: that is contact, and a new spell can start from it.
    log_interaction(
        session=session, customer=customer, kind="behaviour", intent="greet", now=NOW + timedelta(days=62)
    )
    assert customer.last_contact_at == NOW + timedelta(days=62)
    assert drift(session=session, now=NOW + timedelta(days=62 + 61))["drift_checkin"] == 1
    keys = session.scalars(
        select(Delivery.idempotency_key).where(Delivery.kind == OutreachKind.SILENCE)
    ).all()
    assert sorted(keys) == [
        f"silence:customer:{customer.id}:since:{quiet_since:%Y-%m-%d}",
        f"silence:customer:{customer.id}:since:{NOW + timedelta(days=62):%Y-%m-%d}",
    ]
