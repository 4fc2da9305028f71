"""Learning from live chats: what the review lists from Rasa's tracker store, the admins' decisions,
and the export to a new NLU file — on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import nlu_review
from bot.crm.db import make_engine
from bot.crm.models import (
    Agent,
    Author,
    NluReview,
    ReviewDecision,
    Role,
)
from bot.crm.nlu_export import export
from bot.crm.nlu_review import ReviewError, Vocabulary, collect, decide, reopen, reviewed, to_review
from tests.crm.rasa_tracker import Chat, RasaTrackerStore
from tests.factories import make_order
from tests.gateway.fixtures import crm_template

__all__ = ["crm_template"]

FALLBACKS = frozenset({"action_default_fallback", "action_clarify"})
WORDS = Vocabulary(
    intents=(
        "complain",
        "request_refund",
        "check_order_status",
        "request_human",
        "faq/returns",
        "out_of_scope",
    ),
    entities=frozenset({"email", "phone", "order_id"}),
)
TODAY = date(2026, 12, 4)


@pytest.fixture
def tracker(tmp_path: Path) -> RasaTrackerStore:
    return RasaTrackerStore(tmp_path / "rasa_tracker.db")


@pytest.fixture
def admin(session: Session) -> Agent:
    agent = Agent(username="ada-review", display_name="Ada Admin", role=Role.ADMIN, password_hash="x")
    session.add(agent)
    session.flush()
    return agent


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def committing(request: pytest.FixtureRequest, tmp_path: Path, crm_template: Path) -> Iterator[Session]:
    """A session on a CRM of its own, for the export, which commits: a copy of the migrated
    SQLite template, or the emptied PostgreSQL database."""
    if request.param == "sqlite":
        shutil.copy(crm_template, tmp_path / "crm.db")
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_scratch")
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def exporter(committing: Session) -> Agent:
    agent = Agent(username="ada-review", display_name="Ada Admin", role=Role.ADMIN, password_hash="x")
    committing.add(agent)
    committing.flush()
    return agent


def scan(session: Session, tracker: RasaTrackerStore) -> int:
    return collect(session, tracker_db=tracker.path, threshold=0.6, fallback_actions=FALLBACKS)


def listed(session: Session) -> dict[str, list[str]]:
    return {item.text: item.reasons for item in to_review(session=session)}


def test_lists_fallbacks_unsure_messages_and_the_message_before_asking_for_a_person(
    session: Session, tracker: RasaTrackerStore
) -> None:
    chat = Chat(session, tracker)
    chat.says("hello", "greet", 0.99)
    chat.says(
        "i wanna lodge a grievance",
        "nlu_fallback",
        0.4,
        answer="action_clarify",
        ranking=[("nlu_fallback", 0.4), ("complain", 0.31), ("request_refund", 0.2)],
        votes={"diet": ("complain", 0.7), "logistic_regression": ("request_refund", 0.3)},
    )
    chat.says("where's my stuff", "check_order_status", 0.55)
    chat.says("the thing I got is rubbish", "complain", 0.93, answer="action_default_fallback")
    chat.says("this is going nowhere", "out_of_scope", 0.9)
    chat.says("let me talk to someone", "request_human", 0.97, answer="action_request_human")

    assert scan(session, tracker) == 4
    assert listed(session) == {
        "this is going nowhere": ["then asked for a person"],
        "the thing I got is rubbish": ["not understood"],
        "where's my stuff": ["unsure"],
        "i wanna lodge a grievance": ["not understood"],
    }
    grievance = next(i for i in to_review(session=session) if i.text == "i wanna lodge a grievance")
    assert (grievance.intent, grievance.confidence) == ("complain", 0.31)  # what it would have been
    assert grievance.votes == {
        "diet": {"intent": "complain", "confidence": 0.7},
        "logistic_regression": {"intent": "request_refund", "confidence": 0.3},
    }
    assert grievance.alternatives == ["request_refund", "out_of_scope"]


def test_button_presses_external_intents_and_messages_a_person_answered_are_not_listed(
    session: Session, tracker: RasaTrackerStore
) -> None:
    chat = Chat(session, tracker)
    chat.says("/affirm", "affirm", 0.1)  # a button payload, not the customer's words
    tracker.turn(
        chat.sender_id,
        "EXTERNAL: EXTERNAL_checkin",
        message_id=None,
        intent="EXTERNAL_checkin",
        confidence=0.1,
    )
    paused = chat.line(Author.CUSTOMER, "ok so what now")  # handed off: Rasa predicts nothing
    tracker.user(
        chat.sender_id, paused.text or "", message_id=paused.id, intent="nlu_fallback", confidence=0.3
    )
    tracker.user(
        chat.sender_id,
        "anyone?",
        message_id=chat.line(Author.CUSTOMER, "anyone?").id,
        intent="deny",
        confidence=0.2,
    )

    assert scan(session, tracker) == 0
    assert to_review(session=session) == []


def test_reading_again_adds_only_what_is_new_and_merges_reasons(
    session: Session, tracker: RasaTrackerStore
) -> None:
    chat = Chat(session, tracker)
    chat.says("meh whatever", "deny", 0.5)
    assert scan(session, tracker) == 1
    assert scan(session, tracker) == 0  # nothing new
    chat.says("PERSON NOW", "request_human", 0.99, answer="action_request_human")
    chat.says("refund pls", "request_refund", 0.45)

    assert scan(session, tracker) == 2
    assert listed(session) == {
        "refund pls": ["unsure"],
        "meh whatever": ["unsure", "then asked for a person"],
    }
    assert session.scalars(select(NluReview)).all().__len__() == 2


def test_a_tracker_store_started_afresh_is_read_from_the_start(session: Session, tmp_path: Path) -> None:
    old = RasaTrackerStore(tmp_path / "old.db")
    chat = Chat(session, old)
    for n in range(5):
        chat.says(f"fine {n}", "affirm", 0.99)
    scan(session, old)
    old.path.unlink()
    fresh = RasaTrackerStore(old.path)
    chat.tracker = fresh
    chat.says("what the heck is this", "out_of_scope", 0.3)

    assert scan(session, fresh) == 1


def test_a_missing_tracker_store_lists_nothing(session: Session, tmp_path: Path) -> None:
    assert collect(session, tracker_db=tmp_path / "none.db", threshold=0.6, fallback_actions=FALLBACKS) == 0


def test_retrieval_intents_are_named_by_topic_and_shown_with_the_conversation_around_them(
    session: Session, tracker: RasaTrackerStore
) -> None:
    chat = Chat(session, tracker)
    for n in range(4):
        chat.says(f"hi {n}", "greet", 0.99)
    chat.says("can i send it back", "faq", 0.52, faq_key="faq/returns")
    chat.line(Author.AGENT, "after 1")
    chat.line(Author.CUSTOMER, "<b>after 2</b>")
    chat.line(Author.BOT, "after 3")
    chat.line(Author.BOT, "after 4")
    scan(session, tracker)

    (item,) = to_review(session=session)
    assert item.intent == "faq/returns"
    assert [(line.author, line.text, line.current) for line in item.context] == [
        ("bot", "(answer to hi 2)", False),
        ("customer", "hi 3", False),
        ("bot", "(answer to hi 3)", False),
        ("customer", "can i send it back", True),
        ("bot", "(answer to can i send it back)", False),
        ("agent", "after 1", False),
        ("customer", "<b>after 2</b>", False),
    ]


def test_erased_messages_are_not_listed(session: Session, tracker: RasaTrackerStore) -> None:
    chat = Chat(session, tracker)
    message = chat.says("my name is Ulla and I am cross", "complain", 0.5)
    scan(session, tracker)
    message.text = None  # what erasure leaves
    session.flush()

    assert to_review(session=session) == []


def test_confirm_correct_leave_out_and_review_again(
    session: Session, tracker: RasaTrackerStore, admin: Agent
) -> None:
    chat = Chat(session, tracker)
    chat.says("its broken", "complain", 0.5)
    chat.says("money back", "complain", 0.5)
    chat.says("blah", "complain", 0.5)
    scan(session, tracker)
    ids = {item.text: item.id for item in to_review(session=session)}

    assert decide(
        session=session, review_id=ids["its broken"], intent="complain", agent_id=admin.id, vocabulary=WORDS
    ) == (ReviewDecision.CONFIRMED)
    assert (
        decide(
            session=session,
            review_id=ids["money back"],
            intent="request_refund",
            agent_id=admin.id,
            vocabulary=WORDS,
        )
        == ReviewDecision.CORRECTED
    )
    assert decide(
        session=session, review_id=ids["blah"], intent=None, agent_id=admin.id, vocabulary=WORDS
    ) == (ReviewDecision.LEFT_OUT)
    assert to_review(session=session) == []
    done = {i.text: (i.decision, i.chosen_intent, i.reviewed_by) for i in reviewed(session=session)}
    assert done == {
        "its broken": ("confirmed", "complain", "Ada Admin"),
        "money back": ("corrected", "request_refund", "Ada Admin"),
        "blah": ("left out", None, "Ada Admin"),
    }
    reopen(session=session, review_id=ids["blah"], agent_id=admin.id)
    assert [i.text for i in to_review(session=session)] == ["blah"]


@pytest.mark.parametrize("intent", ["EXTERNAL_checkin", "nlu_fallback", "faq", "no_such_intent"])
def test_only_the_assistants_intents_can_be_chosen(
    session: Session, tracker: RasaTrackerStore, admin: Agent, intent: str
) -> None:
    chat = Chat(session, tracker)
    chat.says("hmm", "complain", 0.5)
    scan(session, tracker)
    (item,) = to_review(session=session)

    with pytest.raises(ReviewError, match="not an intent"):
        decide(session=session, review_id=item.id, intent=intent, agent_id=admin.id, vocabulary=WORDS)
    assert to_review(session=session)[0].decision is None


def decided(
    session: Session, tracker: RasaTrackerStore, admin: Agent, chat: Chat, text: str, intent: str
) -> int:
    chat.says(text, "out_of_scope", 0.3)
    scan(session, tracker)
    item = next(i for i in to_review(session=session) if i.text == text)
    decide(session=session, review_id=item.id, intent=intent, agent_id=admin.id, vocabulary=WORDS)
    return item.id


def exported(session: Session, out: Path, training: Path) -> Any:
    return export(
        session=session,
        directory=out,
        known_data=[training],
        entities=WORDS.entities,
        actor="ada",
        today=TODAY,
    )


def load(path: Path) -> dict[str, list[str]]:
    content = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert content["version"] == "3.1"
    return {item["intent"]: [line[2:] for line in item["examples"].splitlines()] for item in content["nlu"]}


def test_export_writes_a_new_masked_file_once(
    committing: Session, tracker: RasaTrackerStore, exporter: Agent, tmp_path: Path
) -> None:
    out, training = tmp_path / "data" / "nlu" / "review", tmp_path / "data"
    chat = Chat(committing, tracker, first_name="Ulla", last_name="Berg", email="ulla.berg@mail.example")
    order = make_order(committing, chat.customer, number="CL-204233", tracking_code="JJD000390007")
    decided(
        committing,
        tracker,
        exporter,
        chat,
        "Ulla Berg here, CL-204233 never came, parcel JJD000390007",
        "complain",
    )
    decided(
        committing,
        tracker,
        exporter,
        chat,
        "write to ULLA.BERG@mail.example or call +49 151 23456789",
        "out_of_scope",
    )
    left = chat.says("whatever", "out_of_scope", 0.3)
    scan(committing, tracker)
    item = next(i for i in to_review(session=committing) if i.message_id == left.id)
    decide(session=committing, review_id=item.id, intent=None, agent_id=exporter.id, vocabulary=WORDS)

    first = exported(committing, out, training)
    assert (first.file, first.lines) == ("review-2026-12-04-1.yml", 2)
    assert load(out / first.file) == {
        "complain": ["Anna Smith here, [CL-100000](order_id) never came, parcel X0000000"],
        "out_of_scope": ["write to [anna@example.com](email) or call [+44 20 7946 0000](phone)"],
    }
    assert order.number not in (out / first.file).read_text()

    again = exported(committing, out, training)
    assert (again.file, again.lines, again.already_known) == (None, 0, 0)
    assert sorted(p.name for p in out.iterdir()) == ["review-2026-12-04-1.yml"]
    assert {i.export_file for i in reviewed(session=committing) if i.chosen_intent} == {
        "review-2026-12-04-1.yml"
    }

    decided(committing, tracker, exporter, chat, "where is my refund", "request_refund")
    second = exported(committing, out, training)
    assert second.file == "review-2026-12-04-2.yml"
    assert load(out / second.file) == {"request_refund": ["where is my refund"]}


def test_an_exported_decision_cannot_change(
    committing: Session, tracker: RasaTrackerStore, exporter: Agent, tmp_path: Path
) -> None:
    chat = Chat(committing, tracker)
    review_id = decided(committing, tracker, exporter, chat, "this app stinks", "complain")
    exported(committing, tmp_path / "out", tmp_path / "data")

    with pytest.raises(ReviewError, match="already exported in review-2026-12-04-1.yml"):
        decide(
            session=committing,
            review_id=review_id,
            intent="out_of_scope",
            agent_id=exporter.id,
            vocabulary=WORDS,
        )
    with pytest.raises(ReviewError):
        reopen(session=committing, review_id=review_id, agent_id=exporter.id)


def test_examples_in_the_training_or_held_out_data_are_not_written_again(
    committing: Session, tracker: RasaTrackerStore, exporter: Agent, tmp_path: Path
) -> None:
    training, held_out = tmp_path / "data", tmp_path / "tests" / "nlu"
    (training / "nlu").mkdir(parents=True)
    held_out.mkdir(parents=True)
    (training / "nlu" / "orders.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: check_order_status\n    examples: |\n'
        "      - where is order [CL-100000](order_id)\n      - where is my stuff\n"
    )
    (held_out / "blind.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: complain\n    examples: |\n      - my parcel never came!!\n'
    )
    chat = Chat(committing, tracker)
    decided(committing, tracker, exporter, chat, "Where is order cl-555555", "check_order_status")
    decided(committing, tracker, exporter, chat, "where is my   stuff?", "check_order_status")
    decided(committing, tracker, exporter, chat, "My parcel never came", "complain")  # a test message
    decided(committing, tracker, exporter, chat, "my parcel never came back", "complain")

    out = training / "nlu" / "review"
    result = export(
        session=committing,
        directory=out,
        known_data=[training, held_out],
        entities=WORDS.entities,
        actor="ada",
        today=TODAY,
    )
    assert (result.file, result.lines, result.already_known) == ("review-2026-12-04-1.yml", 1, 3)
    assert load(out / "review-2026-12-04-1.yml") == {"complain": ["my parcel never came back"]}
    assert {i.exported_at is not None for i in reviewed(session=committing)} == {True}


def test_the_file_is_removed_when_the_decisions_cannot_be_marked(
    session: Session, tracker: RasaTrackerStore, admin: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = Chat(session, tracker)
    decided(session, tracker, admin, chat, "grr", "complain")

    def broken() -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(session, "commit", broken)
    with pytest.raises(RuntimeError):
        exported(session, tmp_path / "out", tmp_path / "data")
    assert list((tmp_path / "out").iterdir()) == []  # the caller's rollback keeps the decision to export


def test_vocabulary_is_the_domains_intents_with_faq_topics_and_no_external_ones(tmp_path: Path) -> None:
    (tmp_path / "data" / "nlu").mkdir(parents=True)
    (tmp_path / "domain.yml").write_text(
        "intents:\n  - greet\n  - faq\n  - EXTERNAL_checkin\n  - complain:\n      use_entities: []\n"
        "entities:\n  - email\nresponses:\n  utter_faq/hours:\n    - text: x\n"
    )
    (tmp_path / "data" / "nlu" / "faq.yml").write_text("responses:\n  utter_faq/returns:\n    - text: y\n")

    words = nlu_review.vocabulary(tmp_path)
    assert words.intents == ("greet", "faq/hours", "faq/returns", "complain", "out_of_scope")
    assert words.entities == frozenset({"email"})


def test_the_projects_vocabulary_and_fallback_actions(project_root: Path) -> None:
    words = nlu_review.vocabulary(project_root)
    assert "complain" in words.intents and "out_of_scope" in words.intents
    assert not [i for i in words.intents if i.startswith("EXTERNAL_") or i == "faq"]
    assert "faq/returns" in words.intents
    assert {"email", "phone", "order_id"} <= words.entities
    assert "action_default_fallback" in nlu_review.fallback_actions(project_root)


def test_two_exports_at_once_write_one_file(
    committing: Session, tracker: RasaTrackerStore, exporter: Agent, tmp_path: Path
) -> None:
    chat = Chat(committing, tracker)
    for n in range(3):
        decided(committing, tracker, exporter, chat, f"parcel {n} is soaked", "complain")
    committing.commit()
    engine, start = committing.get_bind(), threading.Barrier(2)

    def one_export() -> Any:
        with Session(engine, expire_on_commit=False) as own:
            start.wait()
            return exported(own, tmp_path / "out", tmp_path / "data")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: one_export(), range(2)))

    assert sorted(r.lines for r in results) == [0, 3]
    (written,) = (tmp_path / "out").iterdir()
    assert sorted(load(written)["complain"]) == [
        "parcel 0 is soaked",
        "parcel 1 is soaked",
        "parcel 2 is soaked",
    ]
