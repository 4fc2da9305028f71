"""Feedback items in the CRM, on SQLite and PostgreSQL: the customer's words are filed where they
are stored, read for a theme, worked by one owner at a time, refused when the form is stale, and
the customer is told what changed exactly once, as a service message through the policy gate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import import_module
from pathlib import Path

import pytest
from sqlalchemy import JSON, func, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnClause

from bot.crm import feedback
from bot.crm.db import make_engine
from bot.crm.feedback import FeedbackError, Filters, NoSuchItem, StaleItem, Viewer
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Agent,
    Delivery,
    DeliveryStatus,
    FeedbackItem,
    FeedbackSource,
    FeedbackState,
    FeedbackTheme,
    LeaveReason,
    OutreachKind,
    RetentionAttempt,
    RetentionOutcome,
    Role,
    UTCDateTime,
)
from bot.crm.retention import record_exit_answer
from bot.crm.surveys import record_comment, record_rating
from tests.factories import make_customer

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)


def make_agent(session: Session, name: str, role: Role = Role.AGENT) -> Viewer:
    agent = Agent(username=name, display_name=name.title(), role=role, password_hash="x")
    session.add(agent)
    session.flush()
    return Viewer(agent.id, role)


def an_item(session: Session, words: str = "The courier left the parcel in the rain") -> FeedbackItem:
    customer = make_customer(session)
    survey = record_comment(session=session, customer=customer, comment=words, now=NOW)
    item = session.scalar(select(FeedbackItem).where(FeedbackItem.survey_id == survey.id))
    assert item is not None
    return item


def test_free_feedback_is_filed_with_its_theme(session: Session) -> None:
    item = an_item(session, "The Aurora espresso machine is great but your app keeps crashing")
    assert item.source is FeedbackSource.FEEDBACK
    assert item.theme is FeedbackTheme.TECHNICAL
    assert item.product == "Aurora espresso machine"
    assert item.state is FeedbackState.NEW and item.owner_id is None and item.customer_told_at is None


def test_a_comment_on_a_low_rating_is_filed_with_the_score(session: Session) -> None:
    customer = make_customer(session)
    record_rating(session=session, customer=customer, score=1, now=NOW)
    record_comment(session=session, customer=customer, comment="Nobody answered my emails", now=NOW)
    item = session.scalar(select(FeedbackItem).where(FeedbackItem.customer_id == customer.id))
    assert item is not None
    assert (item.source, item.score, item.theme) == (FeedbackSource.RATING_COMMENT, 1, FeedbackTheme.SERVICE)


def test_a_leaving_customers_answer_is_filed_with_the_competitor(session: Session) -> None:
    customer = make_customer(session)
    attempt = RetentionAttempt(
        customer_id=customer.id, reason=LeaveReason.PRICE, outcome=RetentionOutcome.DECLINED, created_at=NOW
    )
    session.add(attempt)
    session.flush()
    record_exit_answer(
        session=session,
        customer=customer,
        conversation=None,
        attempts=[attempt],
        answer="BrewBox sends the same beans for less",
        now=NOW,
    )
    item = session.scalar(select(FeedbackItem).where(FeedbackItem.retention_attempt_id == attempt.id))
    assert item is not None
    assert (item.source, item.theme, item.competitor) == (
        FeedbackSource.EXIT_ANSWER,
        FeedbackTheme.COMPETITOR,
        "BrewBox",
    )


def test_the_reason_given_decides_when_the_words_name_no_theme(session: Session) -> None:
    assert feedback.read_words("just because", leave_reason="moving").theme is FeedbackTheme.MOVING
    assert feedback.read_words("just because").theme is FeedbackTheme.OTHER


def test_items_copied_without_a_theme_are_read_by_the_page(session: Session) -> None:
    customer = make_customer(session)
    session.add(
        FeedbackItem(
            customer_id=customer.id,
            source=FeedbackSource.FEEDBACK,
            text="I was charged twice for one order",
            state=FeedbackState.NEW,
            created_at=NOW,
        )
    )
    session.flush()
    assert feedback.read_themes(session=session) == 1
    item = session.scalar(select(FeedbackItem).where(FeedbackItem.customer_id == customer.id))
    assert item is not None and item.theme is FeedbackTheme.BILLING
    assert feedback.read_themes(session=session) == 0


def test_the_page_groups_by_theme_and_filters(session: Session) -> None:
    alex = make_agent(session, "alex")
    late = an_item(session, "The parcel was late again")
    an_item(session, "The courier was rude at the door, and the delivery was late")
    charged = an_item(session, "I was charged twice")
    feedback.take(session=session, viewer=alex, item_id=charged.id, version=charged.version, now=NOW)
    rows = feedback.items(session=session, viewer=alex, filters=Filters())
    groups = dict(feedback.by_theme(rows))
    assert {r.id for r in groups["delivery"]} >= {late.id}
    assert [r.id for r in groups["billing"]] == [charged.id]
    mine = feedback.items(session=session, viewer=alex, filters=Filters.parse({"owner": "mine"}))
    assert [r.id for r in mine] == [charged.id]
    new_only = feedback.items(session=session, viewer=alex, filters=Filters.parse({"state": "new"}))
    assert charged.id not in {r.id for r in new_only} and late.id in {r.id for r in new_only}
    assert Filters.parse({"theme": "<script>", "owner": "everyone"}) == Filters()


def test_take_assign_and_move_write_the_history(session: Session) -> None:
    alex, sam = make_agent(session, "alex"), make_agent(session, "sam")
    item = an_item(session)
    version = feedback.take(session=session, viewer=alex, item_id=item.id, version=item.version, now=NOW)
    assert (item.owner_id, item.state) == (alex.id, FeedbackState.IN_PROGRESS)
    with pytest.raises(FeedbackError, match="Someone else owns"):
        feedback.move(session=session, viewer=sam, item_id=item.id, state="done", version=version)
    version = feedback.assign(session=session, viewer=alex, item_id=item.id, owner_id=sam.id, version=version)
    version = feedback.move(session=session, viewer=sam, item_id=item.id, state="done", version=version)
    assert (item.owner_id, item.state) == (sam.id, FeedbackState.DONE)
    names = feedback.agent_names(session)
    lines = [feedback.describe(e, names) for e in feedback.history(session=session, item_id=item.id)]
    assert lines == [
        "Filed from feedback",
        "Alex: owner nobody → Alex",
        "Alex: new → in progress",
        "Alex: owner Alex → Sam",
        "Sam: in progress → done",
    ]


def test_a_stale_form_is_refused_with_what_changed_and_changes_nothing(session: Session) -> None:
    alex, lead = make_agent(session, "alex"), make_agent(session, "lee", Role.LEAD)
    item = an_item(session)
    shown, seen = item.version, feedback.history(session=session, item_id=item.id)[-1].id
    feedback.take(session=session, viewer=lead, item_id=item.id, version=shown, now=NOW)
    with pytest.raises(StaleItem) as stale:
        feedback.take(session=session, viewer=alex, item_id=item.id, version=shown, seen=seen)
    assert stale.value.changes == ["Lee: owner nobody → Lee", "Lee: new → in progress"]
    assert item.owner_id == lead.id


def test_bad_input_is_refused(session: Session) -> None:
    alex = make_agent(session, "alex")
    item = an_item(session)
    with pytest.raises(NoSuchItem):
        feedback.take(session=session, viewer=alex, item_id=999_999, version=None)
    with pytest.raises(FeedbackError, match="Take it first"):
        feedback.move(session=session, viewer=alex, item_id=item.id, state="done", version=item.version)
    with pytest.raises(FeedbackError, match="Choose the state"):
        feedback.move(session=session, viewer=alex, item_id=item.id, state="closed", version=item.version)
    with pytest.raises(FeedbackError, match="Choose the person"):
        feedback.assign(session=session, viewer=alex, item_id=item.id, owner_id=999_999, version=item.version)
    feedback.take(session=session, viewer=alex, item_id=item.id, version=item.version)
    for text, why in (("   ", "Write the message"), ("x" * 1001, "at most 1,000")):
        with pytest.raises(FeedbackError, match=why):
            feedback.tell_customer(session=session, viewer=alex, item_id=item.id, message=text, version=None)
    assert feedback.delivery_of(session=session, item_id=item.id) is None
    assert item.customer_told_at is None


def test_telling_the_customer_queues_one_service_message_and_marks_the_item(session: Session) -> None:
    alex = make_agent(session, "alex")
    item = an_item(session)
    version = feedback.take(session=session, viewer=alex, item_id=item.id, version=item.version, now=NOW)
    later = NOW + timedelta(hours=2)
    message = "Hi! You told us the courier left your parcel in the rain: our couriers now ring first."
    feedback.tell_customer(
        session=session, viewer=alex, item_id=item.id, message=f"  {message} ", version=version, now=later
    )
    delivery = feedback.delivery_of(session=session, item_id=item.id)
    assert delivery is not None
    assert (delivery.kind, delivery.status, delivery.customer_id) == (
        OutreachKind.CASE_UPDATE,  # a service message: service consent, quiet hours, no weekly cap
        DeliveryStatus.QUEUED,
        item.customer_id,
    )
    assert delivery.payload["campaign_text"] == message
    assert (item.customer_told_at, item.customer_told_by, item.state) == (later, alex.id, FeedbackState.DONE)
    with pytest.raises(FeedbackError, match="already told, by Alex"):  # a double click
        feedback.tell_customer(session=session, viewer=alex, item_id=item.id, message=message, version=None)
    sent = session.scalar(select(func.count(Delivery.id)).where(Delivery.customer_id == item.customer_id))
    assert sent == 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    from tests.conftest import reset_postgres

    url = request.getfixturevalue("pg_scratch")
    reset_postgres(url)  # an empty schema: this test migrates it step by step
    return url


def created_at() -> ColumnClause[datetime]:
    return sa_column("created_at", UTCDateTime())


def test_the_migration_puts_feedback_stored_before_it_on_the_page(empty_url: str) -> None:
    before = import_module("bot.crm.migrations.versions.0008_feedback").down_revision
    upgrade(empty_url, before)
    engine = make_engine(empty_url)
    with engine.begin() as db:  # the tables as that revision had them, not as the models say today
        db.execute(
            sa_table(
                "customer",
                sa_column("id"),
                sa_column("segment"),
                sa_column("temperament"),
                sa_column("churn_risk"),
                sa_column("reachable"),
                sa_column("timezone"),
                sa_column("language"),
                sa_column("tags", JSON()),
                created_at(),
            ).insert(),
            [
                {
                    "id": 1,
                    "segment": "standard",
                    "temperament": "unknown",
                    "churn_risk": 0.0,
                    "reachable": True,
                    "timezone": "UTC",
                    "language": "en",
                    "tags": [],
                    "created_at": NOW,
                }
            ],
        )
        survey = sa_table(
            "survey", sa_column("customer_id"), sa_column("score"), sa_column("comment"), created_at()
        )
        db.execute(
            survey.insert(),
            [
                {"customer_id": 1, "score": 2, "comment": "The grinder is broken", "created_at": NOW},
                {"customer_id": 1, "score": None, "comment": "Love the beans", "created_at": NOW},
                {"customer_id": 1, "score": 5, "comment": None, "created_at": NOW},
            ],
        )
        attempt = sa_table(
            "retention_attempt",
            sa_column("customer_id"),
            sa_column("attempt_no"),
            sa_column("outcome"),
            sa_column("exit_answer"),
            created_at(),
        )
        db.execute(
            attempt.insert(),
            [
                {
                    "customer_id": 1,
                    "attempt_no": 1,
                    "outcome": "declined",
                    "exit_answer": "Too expensive for me",
                    "created_at": NOW,
                }
            ],
        )
    upgrade(empty_url)
    with Session(engine) as session:
        copied = session.scalars(select(FeedbackItem).order_by(FeedbackItem.id)).all()
        assert [(i.source, i.text, i.score, i.theme) for i in copied] == [
            (FeedbackSource.RATING_COMMENT, "The grinder is broken", 2, None),
            (FeedbackSource.FEEDBACK, "Love the beans", None, None),
            (FeedbackSource.EXIT_ANSWER, "Too expensive for me", None, None),
        ]
        assert feedback.read_themes(session=session) == 3
        assert [i.theme for i in copied] == [
            FeedbackTheme.PRODUCT_QUALITY,
            FeedbackTheme.OTHER,
            FeedbackTheme.PRICE,
        ]
    engine.dispose()
