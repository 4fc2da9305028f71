"""The scheduler's nightly refresh of every customer (segments, then churn risk): declared as a cron
job, run once a day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Customer, DriftEpisode, Segment, SegmentChange, SegmentRun
from scheduler.jobs import Runtime, refresh_customers_once
from scheduler.service import build_scheduler
from tests.factories import make_customer, make_order

NIGHT = datetime(2026, 6, 16, 2, 30, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A CRM the test commits to: a fresh SQLite file, or the emptied PostgreSQL scratch database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_scratch"))
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    return url


@pytest.fixture
def factory(crm_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(crm_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def runtime_on(factory: sessionmaker[Session]) -> Runtime:
    none: Any = None  # the refresh uses only the sessions
    return Runtime(settings=none, factory=factory, sender=none, holidays={})


def test_the_refresh_runs_once_a_night_and_moves_who_moved(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        big = make_customer(session, created_at=NIGHT - timedelta(days=300))
        make_order(session, big, total="900.00", days_ago=-0.5)  # NOW - (-0.5) days: the 15th, 24:00
        small = make_customer(session, created_at=NIGHT - timedelta(days=300))
        make_order(session, small, total="20.00", days_ago=-0.5)
        ids = big.id, small.id

    assert refresh_customers_once(runtime_on(factory), NIGHT) == (
        "day 2026-06-16: 2 customers, 1 moved, 0 began drifting, 0 came back, 0 lapsed"
    )
    assert refresh_customers_once(runtime_on(factory), NIGHT + timedelta(hours=1)) == "already ran"

    with factory() as session:
        moves = session.execute(
            select(SegmentChange.customer_id, SegmentChange.from_segment, SegmentChange.to_segment).order_by(
                SegmentChange.customer_id
            )
        ).all()
        assert moves == [(ids[0], None, Segment.MVC), (ids[1], None, Segment.STANDARD)]
        assert session.scalars(select(SegmentRun.day)).all() == [NIGHT.date()]
        scored = session.execute(select(Customer.churn_scored_at).order_by(Customer.id)).scalars().all()
        assert scored == [NIGHT, NIGHT]  # the churn risk was computed in the same pass, once


def test_the_job_is_declared_nightly_in_utc_and_catches_up_after_downtime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Jobs:
        scheduler_db_url = f"sqlite:///{tmp_path / 'jobs.db'}"

    settings: Any = Jobs()
    scheduler = build_scheduler(settings, sweep_seconds=60, send_seconds=10)  # not started: no job table
    job = scheduler.get_job("customers:nightly_refresh")
    assert job is not None and isinstance(job.trigger, CronTrigger)
    assert job.trigger.get_next_fire_time(None, NIGHT - timedelta(hours=1)) == NIGHT
    assert job.misfire_grace_time >= 12 * 3600  # a scheduler down at 02:30 still runs it that day
    assert job.func_ref == "scheduler.jobs:refresh_customers"


def test_the_night_catches_who_began_drifting(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        quiet = make_customer(session, created_at=NIGHT - timedelta(days=300))
        quiet.last_contact_at = NIGHT - timedelta(days=40)
        make_order(session, quiet, total="20.00", days_ago=41)  # one order: no rhythm yet
        quiet_id = quiet.id

    assert refresh_customers_once(runtime_on(factory), NIGHT).endswith(
        "1 began drifting, 0 came back, 0 lapsed"
    )
    with factory() as session:
        episode = session.scalars(select(DriftEpisode)).one()
        segment = session.scalars(select(Customer.segment).where(Customer.id == quiet_id)).one()
    # The segment refreshed tonight decides: the only customer is the most valuable one, silent
    # past MVC's 30 days, so a person calls.
    assert (episode.customer_id, segment, episode.segment, episode.action) == (
        quiet_id,
        Segment.MVC,
        Segment.MVC,
        "task",
    )
