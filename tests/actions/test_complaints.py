"""Complaint actions: empathy matched to the message, a pre-filled form, a filed and routed case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.complaints import ActionAcknowledgeComplaint, ActionFileComplaint, ValidateComplaintForm
from bot.actions.formatting import day, due_phrase
from bot.crm.models import Complaint, ComplaintStatus, Delivery, Segment, Severity, Temperament, utcnow
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_complaint, make_customer, make_order


@pytest.fixture
def ben(crm: Session):  # type: ignore[no-untyped-def]
    customer = make_customer(crm, first_name="Ben", web_id="ben", timezone="America/New_York")
    order = make_order(crm, customer, number="CL-123456", days_ago=3, total="189.00")
    crm.commit()
    return customer, order


async def test_angry_message_is_acknowledged_as_angry_and_prefills_the_form(crm: Session, ben) -> None:  # type: ignore[no-untyped-def]
    customer, order = ben
    text = "My grinder from order CL-123456 arrived BROKEN, this is ridiculous!!"
    events, dispatcher = await run_action(
        ActionAcknowledgeComplaint(), make_tracker("web:ben", text=text, intent="complain")
    )
    assert events == [
        *context(customer, temperament="unknown"),
        SlotSet("empathy", "angry"),
        SlotSet("complaint_category", "product_quality"),
        SlotSet("complaint_order", "CL-123456"),
        SlotSet("complaint_description", text),
        SlotSet("last_order_number", "CL-123456"),
        SlotSet("last_order_date", day(order.placed_at, "America/New_York")),
        SlotSet("order_hint", None),
    ]
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("text", "entity", "category"),
    [
        # every cue is weighed: a crushed parcel with a broken mug inside is the delivery's fault,
        # whatever single word the classifier tagged
        (
            "My parcel arrived completely crushed and the mug inside is broken",
            {"entity": "complaint_category", "value": "product_quality", "extractor": "DIETClassifier"},
            "delivery",
        ),
        # the classifier's entity when the words alone tell nothing
        (
            "I have a problem with my thing",
            {"entity": "complaint_category", "value": "technical", "extractor": "DIETClassifier"},
            "technical",
        ),
        # a button the customer pressed always wins (here over words that say delivery)
        (
            "the parcel is late",
            {"entity": "complaint_category", "value": "billing"},
            "billing",
        ),
    ],
)
async def test_the_category_weighs_every_cue_but_a_chosen_button_wins(
    crm: Session,
    ben,  # type: ignore[no-untyped-def]
    text: str,
    entity: dict[str, str],
    category: str,
) -> None:
    tracker = make_tracker("web:ben", text=text, intent="complain", entities=[entity])
    events, _ = await run_action(ActionAcknowledgeComplaint(), tracker)
    assert SlotSet("complaint_category", category) in events


@pytest.mark.parametrize(
    ("text", "empathy"),
    [
        ("I'd like to report a problem", "calm"),
        ("this is annoying!!", "upset"),
        ("the parcel is late again", "repeat"),
    ],
)
async def test_empathy_matches_the_message(crm: Session, ben, text: str, empathy: str) -> None:  # type: ignore[no-untyped-def]
    events, _ = await run_action(
        ActionAcknowledgeComplaint(), make_tracker("web:ben", text=text, intent="complain")
    )
    assert SlotSet("empathy", empathy) in events


async def test_a_second_complaint_within_30_days_is_a_repeat(crm: Session, ben) -> None:  # type: ignore[no-untyped-def]
    customer, _ = ben
    make_complaint(crm, customer, days_ago=0)
    crm.query(Complaint).filter_by(customer_id=customer.id).update(
        {"created_at": utcnow() - timedelta(days=10)}
    )
    crm.commit()
    events, _ = await run_action(
        ActionAcknowledgeComplaint(), make_tracker("web:ben", text="my app crashes", intent="complain")
    )
    assert SlotSet("empathy", "repeat") in events


async def test_someone_elses_order_is_not_accepted(crm: Session, ben) -> None:  # type: ignore[no-untyped-def]
    other = make_customer(crm, web_id="other")
    make_order(crm, other, number="CL-999999")
    crm.commit()
    validator = ValidateComplaintForm()
    tracker = make_tracker("web:ben", text="CL-999999")
    assert validator.validate_complaint_order("CL-999999", CollectingDispatcher(), tracker, {}) == {
        "complaint_order": None,
        "order_hint": "invalid",
    }
    assert validator.validate_complaint_order("cl 123456", CollectingDispatcher(), tracker, {}) == {
        "complaint_order": "CL-123456",
        "order_hint": None,
    }
    assert validator.validate_complaint_order("no order", CollectingDispatcher(), tracker, {}) == {
        "complaint_order": "none",
        "order_hint": None,
    }


async def test_form_asks_for_an_order_only_when_the_category_concerns_one() -> None:
    validator = ValidateComplaintForm()
    slots = ["complaint_category", "complaint_order", "complaint_description"]
    technical = make_tracker(slots={"complaint_category": "technical"})
    delivery = make_tracker(slots={"complaint_category": "delivery"})
    assert await validator.required_slots(slots, CollectingDispatcher(), technical, {}) == [
        "complaint_category",
        "complaint_description",
    ]
    assert await validator.required_slots(slots, CollectingDispatcher(), delivery, {}) == slots
    assert validator.validate_complaint_category(
        "it's about the parcel", CollectingDispatcher(), delivery, {}
    ) == {"complaint_category": "delivery"}
    assert validator.validate_complaint_category("hmm", CollectingDispatcher(), delivery, {}) == {
        "complaint_category": None
    }


async def test_filing_records_the_case_with_sla_and_says_when(crm: Session, ben) -> None:  # type: ignore[no-untyped-def]
    customer, order = ben
    slots = {
        "complaint_category": "product_quality",
        "complaint_order": "CL-123456",
        "complaint_description": "grinder is broken",
        "empathy": "calm",
    }
    events, _ = await run_action(ActionFileComplaint(), make_tracker("web:ben", slots=slots))

    complaint = crm.scalars(select(Complaint)).one()
    assert (complaint.category.value, complaint.team, complaint.order_id, complaint.status) == (
        "product_quality",
        "quality",
        order.id,
        ComplaintStatus.OPEN,
    )
    assert complaint.severity is Severity.MEDIUM  # a 189.00 order
    assert complaint.sla_due_at - complaint.created_at == timedelta(hours=24)
    assert (
        crm.scalars(select(Delivery).where(Delivery.complaint_id == complaint.id)).one().status.value
        == "queued"
    )
    assert events == [
        *context(customer, open_case=str(complaint.id)),
        SlotSet("complaint_id", str(complaint.id)),
        SlotSet("complaint_team", "product quality"),
        SlotSet("complaint_due", due_phrase(complaint.sla_due_at, complaint.created_at, "America/New_York")),
        SlotSet("offer_human", False),
        SlotSet("complaint_category", None),
        SlotSet("complaint_order", None),
        SlotSet("complaint_description", None),
    ]
    assert str(events[-5]["value"]).startswith("by ")  # a concrete time, not "soon"


@pytest.mark.parametrize(
    ("segment", "temperament", "empathy", "offered"),
    [
        (Segment.MVC, Temperament.RATIONAL, "calm", True),  # valuable customers get a person at once
        (Segment.STANDARD, Temperament.IRRITABLE, "calm", True),  # early human offer for the irritable
        (Segment.STANDARD, Temperament.RATIONAL, "repeat", True),  # high severity
        (Segment.STANDARD, Temperament.RATIONAL, "calm", False),
    ],
)
async def test_a_person_is_offered_when_warranted(
    crm: Session, segment: Segment, temperament: Temperament, empathy: str, offered: bool
) -> None:
    customer = make_customer(crm, web_id="x", segment=segment, temperament=temperament)
    make_order(crm, customer, number="CL-222222", total="30.00")
    crm.commit()
    slots = {
        "complaint_category": "delivery",
        "complaint_order": "CL-222222",
        "complaint_description": "late",
        "empathy": empathy,
    }
    events, _ = await run_action(ActionFileComplaint(), make_tracker("web:x", slots=slots))
    assert SlotSet("offer_human", offered) in events
