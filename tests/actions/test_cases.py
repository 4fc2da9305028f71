""" "What's happening with my complaint?" (action_case_status): the customer's own cases in words, the
promise in their time zone, several cases as buttons, and nothing about anyone else's case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from sqlalchemy.orm import Session

from bot.actions.cases import ActionAcknowledgeCaseAnswer, ActionCaseStatus
from bot.crm.models import ComplaintCategory, ComplaintStatus, utcnow
from tests.actions.conftest import context, make_tracker, run_action, use_database
from tests.factories import make_complaint, make_customer


def ask(sender: str, text: str = "what's happening with my complaint?", chosen: str | None = None) -> Tracker:
    # A button's payload entities, as Rasa 3.6 parses them (RegexMessageHandler).
    entities = (
        [{"entity": "complaint_id", "value": chosen, "extractor": "RegexMessageHandler"}] if chosen else []
    )
    return make_tracker(sender, text=text, intent="case_status", entities=entities)


def said(dispatcher: Any) -> list[dict[str, Any]]:
    """What the action told the customer: response names with their values and buttons."""
    keep = ("response", "buttons", "case_ref", "case_topic", "case_state", "case_team", "case_due")
    keep += ("case_resolution", "case_count")
    return [{k: m[k] for k in keep if m.get(k)} for m in dispatcher.messages]


@pytest.fixture
def mia(crm_both: Session):  # type: ignore[no-untyped-def]
    return make_customer(crm_both, first_name="Mia", web_id="mia", timezone="Europe/Berlin")


def open_case(session: Session, customer: Any, *, hours_left: float, **fields: Any) -> Any:
    now = utcnow()
    return make_complaint(
        session,
        customer,
        status=fields.pop("status", ComplaintStatus.IN_PROGRESS),
        created_at=fields.pop("created_at", now - timedelta(hours=2)),
        sla_due_at=now + timedelta(hours=hours_left),
        **fields,
    )


async def test_one_open_case_is_told_with_state_team_and_promise_in_the_customers_zone(
    crm_both: Session, mia: Any
) -> None:
    case = open_case(crm_both, mia, hours_left=30)
    crm_both.commit()
    due = case.sla_due_at.astimezone(ZoneInfo("Europe/Berlin"))

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events == [*context(mia, open_case=str(case.id)), SlotSet("case_answer", "open")]
    assert said(dispatcher) == [
        {
            "response": "utter_case_open",
            "case_ref": str(case.id),
            "case_topic": "your delivery problem",
            "case_state": "in progress",
            "case_team": "Logistics",
            "case_due": f"{due.strftime('%A %-d %B, %H:%M')} (Europe/Berlin time)",
        }
    ]


async def test_a_case_past_its_promise_says_so_and_offers_a_person(crm_both: Session, mia: Any) -> None:
    open_case(crm_both, mia, hours_left=-1, status=ComplaintStatus.WAITING_ON_CUSTOMER)
    crm_both.commit()

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events[-1] == SlotSet("case_answer", "overdue")
    [message] = said(dispatcher)
    assert message["response"] == "utter_case_overdue"
    assert message["case_state"] == "waiting for your answer to our question"


async def test_several_open_cases_are_listed_as_buttons_and_a_click_tells_that_one(
    crm_both: Session, mia: Any
) -> None:
    older = open_case(crm_both, mia, hours_left=20, created_at=utcnow() - timedelta(hours=5))
    newer = open_case(crm_both, mia, hours_left=40, category=ComplaintCategory.BILLING, team="billing")
    crm_both.commit()

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events[-1] == SlotSet("case_answer", "several")
    assert said(dispatcher) == [
        {
            "response": "utter_case_several",
            "case_count": "2",
            "buttons": [
                {
                    "title": f"#{newer.id} your billing problem (in progress)",
                    "payload": f'/case_status{{"complaint_id": "{newer.id}"}}',
                },
                {
                    "title": f"#{older.id} your delivery problem (in progress)",
                    "payload": f'/case_status{{"complaint_id": "{older.id}"}}',
                },
            ],
        }
    ]

    _, clicked = await run_action(ActionCaseStatus(), ask("web:mia", "/case_status", chosen=str(older.id)))
    [message] = said(clicked)
    assert (message["response"], message["case_ref"], message["case_team"]) == (
        "utter_case_open",
        str(older.id),
        "Logistics",
    )


async def test_another_customers_case_gets_the_same_answer_as_a_case_that_does_not_exist(
    crm_both: Session, mia: Any
) -> None:
    other = make_customer(crm_both, web_id="someone-else")
    theirs = open_case(crm_both, other, hours_left=10, resolution=None)
    crm_both.commit()
    missing = theirs.id + 1000

    _, typed_theirs = await run_action(ActionCaseStatus(), ask("web:mia", f"any news on case #{theirs.id}?"))
    _, typed_missing = await run_action(ActionCaseStatus(), ask("web:mia", f"any news on case #{missing}?"))
    typed_entity = make_tracker(  # the classifier tagging a number is not a button: the number is read
        "web:mia",
        text=f"status of case {theirs.id}",
        intent="case_status",
        entities=[{"entity": "complaint_id", "value": str(theirs.id), "extractor": "CRFEntityExtractor"}],
    )
    _, tagged = await run_action(ActionCaseStatus(), typed_entity)
    _, forged_button = await run_action(
        ActionCaseStatus(), ask("web:mia", "/case_status", chosen=str(theirs.id))
    )

    assert said(typed_theirs) == [{"response": "utter_case_unknown", "case_ref": str(theirs.id)}]
    assert said(typed_missing) == [{"response": "utter_case_unknown", "case_ref": str(missing)}]
    assert said(forged_button) == said(typed_theirs) == said(tagged)


async def test_a_recently_resolved_case_is_told_with_its_resolution(crm_both: Session, mia: Any) -> None:
    make_complaint(
        crm_both,
        mia,
        status=ComplaintStatus.RESOLVED,
        resolution="We sent a new grinder; it arrives on Friday.",
        resolved_at=utcnow() - timedelta(days=1),
        created_at=utcnow() - timedelta(days=3),
        category=ComplaintCategory.PRODUCT_QUALITY,
        team="quality",
    )
    crm_both.commit()

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events[-1] == SlotSet("case_answer", "resolved")
    [message] = said(dispatcher)
    assert message["response"] == "utter_case_resolved"
    assert message["case_resolution"] == "We sent a new grinder; it arrives on Friday."
    assert message["case_topic"] == "the problem with your product"


async def test_no_case_at_all_offers_to_report_one(crm_both: Session, mia: Any) -> None:
    make_complaint(crm_both, mia, status=ComplaintStatus.CLOSED, resolved_at=utcnow() - timedelta(days=90))
    crm_both.commit()

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events[-1] == SlotSet("case_answer", "none")
    assert said(dispatcher) == [{"response": "utter_case_none"}]


async def test_the_crm_down_is_said_honestly(monkeypatch: pytest.MonkeyPatch) -> None:
    use_database(monkeypatch, "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=2")

    events, dispatcher = await run_action(ActionCaseStatus(), ask("web:mia"))

    assert events == [SlotSet("system_trouble", True)]
    assert said(dispatcher) == [{"response": "utter_case_trouble"}]


def answered(sender: str, case_id: int) -> Tracker:
    """The gateway's case answer (EXTERNAL_case_answer), as Rasa parses its payload."""
    entities = [{"entity": "complaint_id", "value": str(case_id), "extractor": "RegexMessageHandler"}]
    text = f'/EXTERNAL_case_answer{{"complaint_id": "{case_id}"}}'
    return make_tracker(sender, text=text, intent="EXTERNAL_case_answer", entities=entities)


async def test_an_answer_on_a_case_is_acknowledged_with_the_team_and_the_cases_due_time(
    crm_both: Session, mia: Any
) -> None:
    case = open_case(crm_both, mia, hours_left=20)
    crm_both.commit()
    due = case.sla_due_at.astimezone(ZoneInfo("Europe/Berlin"))

    events, dispatcher = await run_action(ActionAcknowledgeCaseAnswer(), answered("web:mia", case.id))

    assert events == context(mia, open_case=str(case.id))
    assert said(dispatcher) == [
        {
            "response": "utter_case_answer_added",
            "case_ref": str(case.id),
            "case_team": "Logistics",
            "case_due": f"{due.strftime('%A %-d %B, %H:%M')} (Europe/Berlin time)",
        }
    ]


async def test_an_answer_naming_another_customers_case_says_nothing_about_it(
    crm_both: Session, mia: Any
) -> None:
    other = make_customer(crm_both, first_name="Ole", web_id="ole")
    case = open_case(crm_both, other, hours_left=20)
    crm_both.commit()

    _, dispatcher = await run_action(ActionAcknowledgeCaseAnswer(), answered("web:mia", case.id))

    assert said(dispatcher) == [{"response": "utter_case_answer_noted"}]


async def test_an_answer_acknowledged_with_the_crm_down_promises_nothing_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_database(monkeypatch, "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=2")

    events, dispatcher = await run_action(ActionAcknowledgeCaseAnswer(), answered("web:mia", 3))

    assert events == [SlotSet("system_trouble", True)]
    assert said(dispatcher) == [{"response": "utter_case_answer_noted"}]
