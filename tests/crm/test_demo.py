"""The demo population: realistic, complete and deterministic."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import reports
from bot.crm.db import make_engine
from bot.crm.demo import DEMO_LOGINS, PERSONAS, demo_day, load_demo_data, web_external_id
from bot.crm.migrate import upgrade
from bot.crm.models import (
    HANDOFF_CALLBACK,
    Agent,
    Complaint,
    Consent,
    ConsentPurpose,
    Conversation,
    ConversationStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Handoff,
    HandoffStatus,
    InboundStatus,
    InteractionEvent,
    Message,
    Offer,
    Order,
    OutreachKind,
    Product,
    Refund,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Subscription,
    SubscriptionStatus,
    Survey,
    Temperament,
)
from bot.crm.passwords import verify_password
from bot.crm.queries import find_customer
from bot.crm.surveys import LOW_SCORE

TODAY = date(2026, 11, 23)
NOW = datetime.combine(TODAY, time(12, 0), tzinfo=timezone.utc)  # the demo's "now"


def _load(path: Path) -> Session:
    url = f"sqlite:///{path}"
    upgrade(url)
    session = Session(make_engine(url))
    load_demo_data(session=session, today=TODAY)
    session.commit()
    return session


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return _load(tmp_path_factory.mktemp("demo") / "crm.db")


def _digest(session: Session) -> str:
    rows = session.execute(
        select(
            Customer.first_name, Customer.last_name, Customer.segment, Customer.birthday, Customer.timezone
        ).order_by(Customer.id)
    ).all()
    rows += session.execute(select(Order.number, Order.total, Order.placed_at).order_by(Order.id)).all()
    rows += session.execute(
        select(
            RetentionAttempt.customer_id,
            RetentionAttempt.reason,
            RetentionAttempt.offer_id,
            RetentionAttempt.outcome,
            RetentionAttempt.created_at,
        ).order_by(RetentionAttempt.id)
    ).all()
    rows += session.execute(
        select(Handoff.customer_id, Handoff.mode, Handoff.status, Handoff.claimed_at).order_by(Handoff.id)
    ).all()
    rows += session.execute(
        select(Survey.customer_id, Survey.score, Survey.handoff_id, Survey.created_at).order_by(Survey.id)
    ).all()
    rows += session.execute(select(Complaint.resolved_at).order_by(Complaint.id)).all()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_population_is_about_500_customers_with_history(demo: Session) -> None:
    assert demo.scalar(select(func.count(Customer.id))) == 500
    orders = demo.scalar(select(func.count(Order.id)))
    assert orders is not None and orders > 2000
    first, last = demo.execute(select(func.min(Order.placed_at), func.max(Order.placed_at))).one()
    assert (last - first) > timedelta(days=450)  # spread over about 18 months
    assert demo.scalar(select(func.count(Complaint.id))) > 100
    assert demo.scalar(select(func.count(Refund.id))) > 20
    assert demo.scalar(select(func.count(Product.id))) >= 20
    assert demo.scalar(select(func.count(Offer.id))) >= 10


def test_every_segment_and_temperament_is_represented(demo: Session) -> None:
    segments = Counter(demo.scalars(select(Customer.segment)))
    assert set(segments) == set(Segment)
    assert 0.15 <= segments[Segment.MVC] / 500 <= 0.25  # the top ~20%
    temperaments = set(demo.scalars(select(Customer.temperament)))
    assert temperaments >= set(Temperament) - {Temperament.UNKNOWN}


def test_consent_time_zones_and_birthdays_vary(demo: Session) -> None:
    opted_out = demo.scalar(
        select(func.count(Consent.id)).where(
            Consent.purpose == ConsentPurpose.MARKETING, Consent.granted.is_(False)
        )
    )
    assert opted_out is not None and 40 <= opted_out <= 200
    assert len(set(demo.scalars(select(Customer.timezone)))) >= 5
    assert demo.scalar(select(func.count(Customer.id)).where(Customer.birthday.is_(None))) == 0


def test_personas_are_reachable_by_their_demo_ids(demo: Session) -> None:
    for number, persona in enumerate(PERSONAS, start=1):
        customer = find_customer(session=demo, sender_id=f"web:{web_external_id(number)}")
        assert customer is not None and customer.first_name == persona[0]
    anna = find_customer(session=demo, sender_id="web:demo-0001")
    ben = find_customer(session=demo, sender_id="telegram:700000002")
    assert anna is not None and anna.segment is Segment.MVC
    assert ben is not None and ben.segment is Segment.BZ and ben.temperament is Temperament.IRRITABLE


def test_demo_logins_work(demo: Session) -> None:
    for username, _, role, password in DEMO_LOGINS:
        agent = demo.scalars(select(Agent).where(Agent.username == username)).one()
        assert agent.role is role
        assert verify_password(agent.password_hash, password)
        assert not verify_password(agent.password_hash, password + "x")


def test_same_day_same_data(demo: Session, tmp_path: Path) -> None:
    assert _digest(_load(tmp_path / "again.db")) == _digest(demo)


@pytest.mark.parametrize("days", [30, 90])
def test_every_reports_section_has_figures(demo: Session, days: int) -> None:
    report = reports.report(session=demo, period=reports.last_days(days, now=NOW))
    saves = report.retention
    assert saves.offers_made > 0 and 0 < saves.overall.stayed < saves.overall.asked  # saves and losses
    assert saves.overall.left > 0
    assert len(saves.by_reason) >= 3 and saves.by_segment and saves.offers
    csat = report.satisfaction
    assert csat.answers > 0 and csat.average is not None and 3.5 < csat.average < 4.7  # mostly 4-5
    assert csat.low > 0 and csat.recovery_cases == csat.low  # every low score opened a recovery case
    assert {row.source for row in csat.by_source if row.answers} == {"after a handoff", "after a complaint"}
    handoffs = report.handoffs
    assert handoffs.requested > handoffs.callbacks > 0 and handoffs.claimed > 0
    assert handoffs.wait.median is not None and handoffs.wait.median > 0
    cases = report.cases
    assert cases.filed > 0 and cases.resolved > 0
    kept, broken = cases.promise_shares
    assert kept is not None and broken is not None and 0 < kept < 100  # some late, not all
    assert cases.overall.to_resolve.median is not None and cases.overall.to_resolve.median > 0
    assert not report.empty


def test_save_outcomes_agree_with_the_memberships(demo: Session) -> None:
    outcomes: dict[int, set[RetentionOutcome]] = {}
    for customer_id, outcome in demo.execute(select(RetentionAttempt.customer_id, RetentionAttempt.outcome)):
        outcomes.setdefault(customer_id, set()).add(outcome)
    subscriptions = {s.customer_id: s for s in demo.scalars(select(Subscription))}
    saved = {c for c, o in outcomes.items() if RetentionOutcome.ACCEPTED in o}
    assert saved and all(
        subscriptions[c].status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED) for c in saved
    )
    leaving = {c for c, s in subscriptions.items() if s.status is SubscriptionStatus.CANCEL_REQUESTED}
    assert leaving and not leaving & saved
    assert all(
        RetentionOutcome.DECLINED in outcomes[c] or outcomes[c] == {RetentionOutcome.PENDING} for c in leaving
    )
    win_backs = set(demo.scalars(select(Delivery.customer_id).where(Delivery.kind == OutreachKind.WIN_BACK)))
    assert win_backs == leaving  # the no is respected with a caring check-in later
    attempts = demo.execute(
        select(RetentionAttempt.customer_id, func.count()).group_by(RetentionAttempt.customer_id)
    )
    assert max(n for _, n in attempts) <= 2  # one offer, at most one different second offer


def test_low_scores_open_recovery_cases_linked_by_the_csat_event(demo: Session) -> None:
    low = demo.scalars(select(Survey).where(Survey.score <= LOW_SCORE)).all()
    events = {
        e.data["survey_id"]: e.data["recovery_case"]
        for e in demo.scalars(select(InteractionEvent).where(InteractionEvent.kind == "csat"))
    }
    assert low and len(events) == demo.scalar(select(func.count(Survey.id)))
    for survey in low:
        case = demo.get_one(Complaint, events[survey.id])
        assert case.customer_id == survey.customer_id and case.description.startswith("Recovery")
        assert case.resolved_at is None or case.resolved_at > case.created_at


def test_handoffs_were_worked_and_only_callbacks_wait(demo: Session) -> None:
    handoffs = demo.scalars(select(Handoff)).all()
    assert {h.status for h in handoffs} == {
        HandoffStatus.CLOSED,
        HandoffStatus.RETURNED,
        HandoffStatus.QUEUED,
    }
    for h in handoffs:
        if h.status is HandoffStatus.QUEUED:  # for a newcomer to claim: a callback with something to read
            assert h.mode == HANDOFF_CALLBACK and h.agent_id is None
            assert demo.scalar(
                select(func.count(Message.id)).where(Message.conversation_id == h.conversation_id)
            )
            continue
        assert h.agent_id is not None and h.requested_at < h.claimed_at < h.closed_at <= NOW
        assert (h.resolution is not None) == (h.status is HandoffStatus.CLOSED)
    assert all(s is ConversationStatus.BOT for s in demo.scalars(select(Conversation.status)))


def test_nothing_fires_on_first_start_and_the_past_stays_past(demo: Session) -> None:
    due = select(func.count(Delivery.id)).where(
        Delivery.status == DeliveryStatus.QUEUED, Delivery.scheduled_for <= NOW
    )
    assert demo.scalar(due) == 0  # no burst of old win-backs or check-ins when the scheduler starts
    unanswered = select(func.count(Message.id)).where(
        Message.direction == Direction.INBOUND, Message.delivery_status == InboundStatus.RECEIVED
    )
    assert demo.scalar(unanswered) == 0
    for column in (RetentionAttempt.created_at, Survey.created_at, Handoff.requested_at, Message.created_at):
        assert demo.scalar(select(func.max(column))) <= NOW


def test_personas_start_with_a_clean_slate(demo: Session) -> None:
    personas = [find_customer(session=demo, sender_id=f"web:{web_external_id(n)}") for n in range(1, 6)]
    ids = [c.id for c in personas if c is not None]
    for model in (RetentionAttempt, Handoff, Survey, Conversation):
        assert not demo.scalar(select(func.count(model.id)).where(model.customer_id.in_(ids)))


def test_refuses_a_crm_that_already_has_customers(demo: Session) -> None:
    with pytest.raises(RuntimeError, match="empty CRM only"):
        load_demo_data(session=demo, today=TODAY)


@pytest.mark.postgres
def test_demo_data_loads_on_postgresql(pg_scratch: str) -> None:
    engine = make_engine(pg_scratch)  # an empty CRM, whatever tests ran before on the shared database
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        counts = load_demo_data(session=session, today=TODAY, customers=120)
        assert sum(counts.values()) == 120 and set(counts) == set(Segment)
        session.close()
        transaction.rollback()
    engine.dispose()


@pytest.mark.parametrize(
    ("clock", "day"),
    [
        (datetime(2026, 11, 30, 5, 29, tzinfo=timezone.utc), date(2026, 11, 29)),
        (datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc), date(2026, 11, 30)),
        (datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc), date(2026, 11, 30)),
    ],
)
def test_the_demo_is_built_for_a_noon_that_has_passed(clock: datetime, day: date) -> None:
    assert demo_day(clock) == day
    assert datetime.combine(demo_day(clock), time(12, 0), tzinfo=timezone.utc) <= clock
