"""Reports count the drifting customers who came back, by segment and by what was done first, on
SQLite and PostgreSQL, from episodes the scheduler's drift step really recorded."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Customer, Delivery, DeliveryStatus, DriftEpisode, Segment
from bot.crm.queries import log_interaction
from bot.crm.reports import csv_rows, last_days, report
from scheduler.checkins import drift as drift_step
from tests.factories import NOW, make_customer, make_order

DAY = timedelta(days=1)


def monthly_buyer(session: Session, segment: Segment) -> Customer:
    """Ordered every 30 days, the latest 65 days ago: drifting by their own rhythm."""
    buyer = make_customer(
        session, segment=segment, created_at=NOW - 700 * DAY, last_contact_at=NOW - 65 * DAY
    )
    for n in range(5):
        make_order(session, buyer, days_ago=65 + 30 * n)
    return buyer


def test_the_report_counts_who_came_back_and_who_lapsed(session: Session) -> None:
    ordered = monthly_buyer(session, Segment.STANDARD)
    skipped = monthly_buyer(session, Segment.STANDARD)
    called = monthly_buyer(session, Segment.MVC)
    lapsed = monthly_buyer(session, Segment.MCC)
    drift_step(session=session, now=NOW)
    gated = session.scalars(select(Delivery).where(Delivery.customer_id == skipped.id)).one()
    gated.status, gated.skip_reason = DeliveryStatus.SKIPPED, "no_consent"  # as the sender's gate records it
    sent = session.scalars(select(Delivery).where(Delivery.customer_id == ordered.id)).one()
    sent.status, sent.sent_at = DeliveryStatus.SENT, NOW
    task = session.scalars(select(DriftEpisode).where(DriftEpisode.customer_id == called.id)).one()
    task.task_done_at = NOW + DAY
    make_order(session, ordered, days_ago=-5)
    log_interaction(session=session, customer=called, kind="behaviour", intent="greet", now=NOW + 3 * DAY)
    drift_step(session=session, now=NOW + 40 * DAY)

    found = report(session=session, period=last_days(90, now=NOW + 40 * DAY)).drifting

    mine = {ordered.id, skipped.id, called.id, lapsed.id}
    assert mine <= set(session.scalars(select(DriftEpisode.customer_id)))
    all_ = found.overall
    assert (all_.began, all_.came_back, all_.lapsed, all_.open) == (4, 2, 2, 0)
    assert all_.rate == 0.5
    segments = {row.group: (row.began, row.came_back, row.lapsed) for row in found.by_segment}
    assert segments == {"MVC": (1, 1, 0), "MCC": (1, 0, 1), "standard": (2, 1, 1)}
    actions = {row.group: (row.began, row.came_back, row.lapsed) for row in found.by_action}
    assert actions == {
        "task for a person": (2, 1, 1),
        "check-in sent": (1, 1, 0),
        "check-in not sent: no consent": (1, 0, 1),
    }
    assert found.tasks_done == 1


def test_the_csv_carries_the_drift_figures_and_an_episode_outside_the_period_is_left_out(
    session: Session,
) -> None:
    monthly_buyer(session, Segment.STANDARD)
    drift_step(session=session, now=NOW)

    inside = list(csv_rows(report(session=session, period=last_days(7, now=NOW + DAY))))
    outside = report(session=session, period=last_days(7, now=NOW + 20 * DAY)).drifting

    assert ("drifting", "all", "began drifting", "1") in inside
    assert ("drifting", "all", "still open", "1") in inside
    assert ("drifting", "all", "came-back rate", "") in inside  # nothing is over yet: no rate
    assert outside.overall.began == 0
