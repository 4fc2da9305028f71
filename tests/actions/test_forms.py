"""Leaving a form (bot/actions/forms.py): nonsense judged alike in every form, a form left early noted
and forgotten (or handed to a person), and the question asked again after a request in between."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.complaints import ValidateComplaintForm
from bot.actions.forms import (
    ActionAskCallbackContact,
    ActionAskComplaintCategory,
    ActionAskComplaintOrder,
    ActionAskExitAnswer,
    ActionLeaveForm,
    ValidateExitForm,
    ValidateFeedbackForm,
    has_words,
    is_word,
)
from bot.crm.models import InteractionEvent
from tests.actions.conftest import context, run_action, use_database
from tests.factories import make_customer

COMPLAINT = {"complaint_category": "delivery", "complaint_order": "CL-123456"}


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    return YAML(typ="safe").load((Path(__file__).parents[2] / "domain.yml").read_text())


def form_tracker(
    *,
    form: str,
    asked: str | None,
    text: str,
    intent: str,
    slots: dict[str, Any] | None = None,
    candidate: dict[str, Any] | None = None,
    sender: str = "web:form-1",
) -> Tracker:
    """A tracker as the form sends it to its validator: the message, then the slot it extracted."""
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.3}, "entities": []}
    events = [
        {"event": "user", "text": text, "parse_data": latest},
        *({"event": "slot", "name": k, "value": v} for k, v in (candidate or {}).items()),
    ]
    return Tracker(
        sender,
        {"requested_slot": asked, **(slots or {}), **(candidate or {})},
        latest,
        events,
        False,
        None,
        {"name": form} if form else {},
        "action_listen",
    )


async def validate(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], list[str | None]]:
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, domain())
    return events, [m.get("response") for m in dispatcher.messages]


@pytest.mark.parametrize("token", ["property", "liberty", "grinder", "late", "no", "ok", "lol", "why"])
def test_words_are_words(token: str) -> None:
    assert is_word(token)


@pytest.mark.parametrize("text", ["asdfgh", "qwerty", "jkjkjk", "???", "1234", "sdfg hjkl", "zxcvb", ""])
def test_a_mash_has_no_words(text: str) -> None:
    assert not has_words(text)


async def test_a_wordless_description_is_not_taken_and_the_second_offers_a_person() -> None:
    first = form_tracker(
        form="complaint_form",
        asked="complaint_description",
        text="asdfgh",
        intent="nlu_fallback",
        slots=COMPLAINT,
        candidate={"complaint_description": "asdfgh"},
    )
    events, said = await validate(ValidateComplaintForm(), first)
    assert events == [
        SlotSet("complaint_description", None),
        SlotSet("requested_slot", "complaint_description"),
        SlotSet("form_misses", 1.0),
    ]
    assert said == ["utter_form_unclear"]

    second = form_tracker(
        form="complaint_form",
        asked="complaint_description",
        text="sdfg hjkl",
        intent="greet",  # whatever the classifier guessed, a free answer needs words
        slots={**COMPLAINT, "form_misses": 1.0},
        candidate={"complaint_description": "sdfg hjkl"},
    )
    events, said = await validate(ValidateComplaintForm(), second)
    assert events[-1] == SlotSet("form_misses", 2.0)
    assert said == ["utter_form_offer_person"]


async def test_a_description_in_words_is_taken_even_when_the_classifier_was_unsure() -> None:
    text = "the lid cracked the first time I used it"
    tracker = form_tracker(
        form="complaint_form",
        asked="complaint_description",
        text=text,
        intent="nlu_fallback",
        slots={**COMPLAINT, "form_misses": 1.0},
        candidate={"complaint_description": text},
    )
    events, said = await validate(ValidateComplaintForm(), tracker)
    assert SlotSet("complaint_description", text) in events
    assert events[-1] == SlotSet("form_misses", 0.0)  # understood: the count starts again
    assert said == []


async def test_an_unusable_answer_not_understood_is_a_miss_and_irritable_customers_get_a_person() -> None:
    tracker = form_tracker(
        form="complaint_form",
        asked="complaint_category",
        text="blorp",
        intent="nlu_fallback",
        slots={"temperament": "irritable"},
        candidate={"complaint_category": "blorp"},
    )
    events, said = await validate(ValidateComplaintForm(), tracker)
    assert SlotSet("complaint_category", None) in events
    assert events[-1] == SlotSet("form_misses", 1.0)
    assert said == ["utter_form_offer_person"]


@pytest.mark.parametrize("intent", ["stop", "request_human", "faq", "case_status"])
async def test_a_message_the_form_refuses_gets_no_events_so_the_form_lets_go(intent: str) -> None:
    # The mappings take nothing from these intents; any event from the validator (even a counter
    # reset) would make Rasa's form keep the customer in the question instead of rejecting.
    tracker = form_tracker(
        form="complaint_form",
        asked="complaint_category",
        text="never mind",
        intent=intent,
        slots={"form_misses": 1.0},
    )
    events, said = await validate(ValidateComplaintForm(), tracker)
    assert (events, said) == ([], [])


async def test_a_button_answer_is_never_a_miss() -> None:
    tracker = form_tracker(
        form="complaint_form",
        asked="complaint_category",
        text='/complain{"complaint_category": "billing"}',
        intent="complain",
        candidate={"complaint_category": "billing"},
    )
    events, said = await validate(ValidateComplaintForm(), tracker)
    assert SlotSet("complaint_category", "billing") in events
    assert said == []


@pytest.mark.parametrize(
    ("action", "form", "slot"),
    [
        (ValidateExitForm(), "exit_form", "exit_answer"),
        (ValidateFeedbackForm(), "feedback_form", "feedback_text"),
    ],
)
async def test_exit_and_feedback_answers_need_words(action: Any, form: str, slot: str) -> None:
    mash = form_tracker(
        form=form, asked=slot, text="jkjkjk", intent="nlu_fallback", candidate={slot: "jkjkjk"}
    )
    events, said = await validate(action, mash)
    assert events == [SlotSet(slot, None), SlotSet("requested_slot", slot), SlotSet("form_misses", 1.0)]
    assert said == ["utter_form_unclear"]

    words = form_tracker(
        form=form, asked=slot, text="cheaper beans", intent="give_reason", candidate={slot: "cheaper beans"}
    )
    events, said = await validate(action, words)
    assert events == [SlotSet(slot, "cheaper beans"), SlotSet("form_misses", 0.0)]
    assert said == []


def leave_tracker(sender: str, *, form: str, intent: str, slots: dict[str, Any]) -> Tracker:
    latest = {"text": "never mind", "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return Tracker(sender, slots, latest, [], False, None, {"name": form}, "action_listen")


async def test_never_mind_in_a_complaint_forgets_it_and_notes_what_was_left(crm_both: Session) -> None:
    crm = crm_both
    ben = make_customer(crm, first_name="Ben", web_id="ben-leaves")
    crm.commit()
    slots = {**COMPLAINT, "complaint_description": "the parcel was soaked"}

    events, dispatcher = await run_action(
        ActionLeaveForm(), leave_tracker("web:ben-leaves", form="complaint_form", intent="stop", slots=slots)
    )

    assert events == [
        *context(ben),
        SlotSet("left_form", "complaint"),
        SlotSet("form_misses", 0.0),
        SlotSet("complaint_category", None),
        SlotSet("complaint_order", None),
        SlotSet("complaint_description", None),
        SlotSet("order_hint", None),
    ]
    assert dispatcher.messages == []  # the rule says what was and was not recorded
    left = crm.scalars(select(InteractionEvent).where(InteractionEvent.kind == "form_left")).one()
    assert (left.customer_id, left.intent) == (ben.id, "stop")
    assert left.data == {
        "form": "complaint",
        "gathered": ["complaint_category", "complaint_order", "complaint_description"],
        "complaint_category": "delivery",
        "complaint_order": "CL-123456",
    }  # labels and numbers only: the customer's words stay in the transcript


async def test_asking_for_a_person_keeps_what_was_gathered_for_them(crm_both: Session) -> None:
    crm = crm_both
    make_customer(crm, web_id="ben-person")
    crm.commit()

    events, _ = await run_action(
        ActionLeaveForm(),
        leave_tracker("web:ben-person", form="complaint_form", intent="request_human", slots=COMPLAINT),
    )

    assert events[-2:] == [
        SlotSet("left_form", "complaint"),
        SlotSet("form_misses", 0.0),
    ]  # nothing forgotten


async def test_leaving_the_exit_question_ends_the_save_attempt_even_with_the_crm_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_database(monkeypatch, "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=2")
    tracker = leave_tracker(
        "web:ann", form="exit_form", intent="goodbye", slots={"retention_state": "exhausted"}
    )

    events, _ = await run_action(ActionLeaveForm(), tracker)

    assert events == [
        SlotSet("system_trouble", True),
        SlotSet("left_form", "exit"),
        SlotSet("form_misses", 0.0),
        SlotSet("exit_answer", None),
        SlotSet("retention_state", None),
    ]


def ask_tracker(intent: str, slots: dict[str, Any] | None = None) -> Tracker:
    latest = {"text": "x", "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return Tracker(
        "web:ask", slots or {}, latest, [], False, None, {"name": "complaint_form"}, "complaint_form"
    )


@pytest.mark.parametrize(
    ("intent", "said"),
    [
        ("case_status", ["utter_back_to_complaint", "utter_ask_complaint_category"]),
        ("opt_out", ["utter_back_to_complaint", "utter_ask_complaint_category"]),
        ("faq", ["utter_ask_complaint_category"]),  # small talk and FAQ: just the question again
        ("complain", ["utter_ask_complaint_category"]),
    ],
)
async def test_the_question_after_a_request_offers_to_finish_the_form(intent: str, said: list[str]) -> None:
    events, dispatcher = await run_action(ActionAskComplaintCategory(), ask_tracker(intent))
    assert events == []
    assert [m["response"] for m in dispatcher.messages] == said


async def test_the_exit_question_after_a_request_names_the_cancellation() -> None:
    _, dispatcher = await run_action(ActionAskExitAnswer(), ask_tracker("case_status"))
    assert [m["response"] for m in dispatcher.messages] == ["utter_back_to_exit", "utter_ask_exit_answer"]


async def test_a_guest_is_asked_for_the_order_number_and_a_customer_offered_their_latest() -> None:
    _, guest = await run_action(ActionAskComplaintOrder(), ask_tracker("complain"))
    _, known = await run_action(
        ActionAskComplaintOrder(), ask_tracker("complain", {"last_order_number": "CL-1"})
    )
    assert [m["response"] for m in guest.messages] == ["utter_ask_complaint_order_guest"]
    assert [m["response"] for m in known.messages] == ["utter_ask_complaint_order"]


async def test_leaving_the_callback_question_keeps_the_request_and_asks_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_database(monkeypatch, "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=2")
    tracker = leave_tracker(
        "web:cal",
        form="callback_form",
        intent="stop",
        slots={"callback_ask": True, "callback_hint": "invalid"},
    )

    events, _ = await run_action(ActionLeaveForm(), tracker)

    assert events == [
        SlotSet("system_trouble", True),
        SlotSet("left_form", "callback"),
        SlotSet("form_misses", 0.0),
        SlotSet("callback_contact", None),
        SlotSet("callback_hint", None),
        SlotSet("callback_ask", None),
    ]


async def test_the_callback_question_after_a_request_offers_to_finish_it() -> None:
    _, dispatcher = await run_action(ActionAskCallbackContact(), ask_tracker("case_status"))
    said = [m["response"] for m in dispatcher.messages]
    assert said == ["utter_back_to_callback", "utter_ask_callback_contact"]


async def test_after_a_case_answer_in_between_the_form_offers_to_finish() -> None:
    _, dispatcher = await run_action(ActionAskComplaintCategory(), ask_tracker("EXTERNAL_case_answer"))
    said = [m["response"] for m in dispatcher.messages]
    assert said == ["utter_back_to_complaint", "utter_ask_complaint_category"]
