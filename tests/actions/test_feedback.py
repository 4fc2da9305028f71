"""Feedback offered is asked for; feedback given is kept word for word."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.feedback import ActionRecordFeedback, only_offers_feedback
from bot.crm.models import Customer, Survey
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_customer


@pytest.fixture
def dana(crm: Session) -> Customer:
    customer = make_customer(crm, first_name="Dana", web_id="dana", email="dana@old.example")
    crm.commit()
    return customer


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to give you some feedback",
        "i want to give feedback",
        "How do I leave a review?",
        "can I rate you",
        "feedback",
        "I have a suggestion",
        "I want to leave feedback about my last order",
        "where can I write a review of the shop",
        "I want to leave a 5 star review",
        "/give_feedback",
    ],
)
def test_an_offer_to_give_feedback_is_not_feedback(text: str) -> None:
    assert only_offers_feedback(text)


@pytest.mark.parametrize(
    "text",
    [
        "the app is clunky but delivery is fast",
        "quick feedback: love it",
        "I want to give feedback, the courier was rude",
        "I have a suggestion about delivery times on saturdays please",
        "my feedback - the grinder instructions are confusing",
        "your support was great today",
    ],
)
def test_feedback_with_something_in_it_is_feedback(text: str) -> None:
    assert not only_offers_feedback(text)


async def test_an_offer_is_asked_for_and_nothing_is_stored(crm: Session, dana: Customer) -> None:
    tracker = make_tracker("web:dana", text="I'd like to give you some feedback", intent="give_feedback")
    events, dispatcher = await run_action(ActionRecordFeedback(), tracker)
    assert events == [*context(dana), SlotSet("feedback_state", "awaited")]
    assert dispatcher.messages == []
    assert crm.scalars(select(Survey)).all() == []


async def test_the_answer_to_the_question_is_stored_even_when_short(crm: Session, dana: Customer) -> None:
    tracker = make_tracker(
        "web:dana", text="slow site", intent="give_feedback", slots={"feedback_text": "slow site"}
    )
    events, _ = await run_action(ActionRecordFeedback(), tracker)
    assert events == [*context(dana), SlotSet("feedback_state", "recorded"), SlotSet("feedback_text", None)]
    assert crm.scalars(select(Survey.comment)).all() == ["slow site"]


async def test_feedback_given_at_once_is_stored(crm: Session, dana: Customer) -> None:
    tracker = make_tracker("web:dana", text="the courier was lovely", intent="give_feedback")
    events, _ = await run_action(ActionRecordFeedback(), tracker)
    assert events[-2:] == [SlotSet("feedback_state", "recorded"), SlotSet("feedback_text", None)]
    assert crm.scalars(select(Survey.comment)).all() == ["the courier was lovely"]
