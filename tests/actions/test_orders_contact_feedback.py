"""Order status, refunds, contact details, consent, CSAT, handoff and clarification actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.contact import (
    ActionSetMarketingConsent,
    ActionUpdateContactDetails,
    ValidateContactForm,
    parse_contact,
)
from bot.actions.fallback import ActionClarify
from bot.actions.feedback import ActionRecordFeedback, ActionRecordRating, parse_score
from bot.actions.formatting import day
from bot.actions.orders import ActionCheckOrderStatus, ActionRequestRefund
from bot.crm.models import (
    AuditLog,
    Complaint,
    ComplaintStatus,
    Consent,
    ConsentPurpose,
    Customer,
    OrderStatus,
    OutboundMail,
    Refund,
    Survey,
    utcnow,
)
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_complaint, make_customer, make_order


@pytest.fixture
def dana(crm: Session) -> Customer:
    customer = make_customer(
        crm, first_name="Dana", web_id="dana", email="dana@old.example", timezone="Europe/London"
    )
    crm.commit()
    return customer


def order_id(value: str) -> list[dict[str, str]]:
    return [{"entity": "order_id", "value": value}]


async def test_status_of_the_latest_order_without_a_number(crm: Session, dana: Customer) -> None:
    make_order(crm, dana, number="CL-100001", days_ago=40)
    latest = make_order(
        crm,
        dana,
        number="CL-100002",
        days_ago=1,
        status=OrderStatus.SHIPPED,
        carrier="DHL",
        tracking_code="TRK1",
        expected_at=utcnow() + timedelta(days=2),
    )
    crm.commit()
    events, _ = await run_action(
        ActionCheckOrderStatus(), make_tracker("web:dana", text="where's my last order?")
    )
    assert events == [
        *context(dana),
        SlotSet("order_lookup", "found"),
        SlotSet("order_id", None),
        SlotSet("order_number", "CL-100002"),
        SlotSet("order_date", day(latest.placed_at, "Europe/London")),
        SlotSet("order_eta", day(latest.expected_at, "Europe/London")),
        SlotSet("order_carrier", "DHL"),
        SlotSet("order_tracking", "TRK1"),
        SlotSet("order_total", "50.00"),
        SlotSet("order_state", "shipped"),
    ]


async def test_someone_elses_order_is_not_found_and_no_order_needs_a_number(
    crm: Session, dana: Customer
) -> None:
    other = make_customer(crm, web_id="other")
    make_order(crm, other, number="CL-777777")
    crm.commit()
    tracker = make_tracker("web:dana", text="status of CL-777777", entities=order_id("CL-777777"))
    events, _ = await run_action(ActionCheckOrderStatus(), tracker)
    assert events[6:] == [SlotSet("order_lookup", "not_found"), SlotSet("order_id", "CL-777777")]
    events, _ = await run_action(ActionCheckOrderStatus(), make_tracker("web:dana", text="where is my order"))
    assert events[6:] == [SlotSet("order_lookup", "need_id"), SlotSet("order_id", None)]


async def test_refund_within_policy_is_created(crm: Session, dana: Customer) -> None:
    make_order(crm, dana, number="CL-300300", total="24.00", delivered_at=utcnow() - timedelta(days=3))
    crm.commit()
    tracker = make_tracker("web:dana", text="refund cl300300 please", intent="request_refund")
    events, _ = await run_action(ActionRequestRefund(), tracker)
    refund = crm.scalars(select(Refund)).one()
    assert events[6:9] == [
        SlotSet("refund_outcome", "eligible"),
        SlotSet("refund_id", str(refund.id)),
        SlotSet("order_id", None),
    ]
    assert SlotSet("order_total", "24.00") in events


async def test_refund_outside_the_window_is_not_promised(crm: Session, dana: Customer) -> None:
    make_order(crm, dana, number="CL-300301", delivered_at=utcnow() - timedelta(days=45))
    crm.commit()
    tracker = make_tracker("web:dana", text="refund", intent="request_refund", entities=order_id("CL-300301"))
    events, _ = await run_action(ActionRequestRefund(), tracker)
    assert SlotSet("refund_outcome", "too_late") in events and SlotSet("refund_id", None) in events
    assert crm.scalars(select(Refund)).all() == []


async def test_refund_without_a_number_asks_which_order(crm: Session, dana: Customer) -> None:
    make_order(crm, dana, number="CL-300302")
    crm.commit()
    events, _ = await run_action(ActionRequestRefund(), make_tracker("web:dana", text="I want my money back"))
    assert events[6:] == [SlotSet("refund_outcome", "need_id"), SlotSet("last_order_number", "CL-300302")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anna.new@Example.com", ("email", "anna.new@example.com")),
        ("my new email is bob@example.co.uk.", ("email", "bob@example.co.uk")),
        ("+44 7700 900123", ("phone", "+447700900123")),
        ("(030) 1234-5678", ("phone", "03012345678")),
        ("12", None),
        ("<script>alert(1)</script>@x", None),
        ("bob@", None),
        ("' OR 1=1 --", None),
    ],
)
def test_contact_values_are_validated(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_contact(text) == expected


async def test_contact_update_shows_what_changed_and_is_audited(crm: Session, dana: Customer) -> None:
    validator = ValidateContactForm()
    assert validator.validate_contact_value("nope", CollectingDispatcher(), make_tracker(), {}) == {
        "contact_value": None,
        "contact_hint": "invalid",
    }
    tracker = make_tracker("web:dana", slots={"contact_value": "dana@new.example"})
    events, _ = await run_action(ActionUpdateContactDetails(), tracker)
    assert events == [
        *context(dana),
        SlotSet("contact_kind", "email"),
        SlotSet("contact_old", "dana@old.example"),
        SlotSet("contact_new", "dana@new.example"),
        SlotSet("contact_value", None),
        SlotSet("contact_hint", None),
        SlotSet("email_state", "unverified"),
    ]
    crm.expire_all()
    # An address typed in chat is only asked to be confirmed: the old one stays until the link is opened.
    assert crm.get(Customer, dana.id).email == "dana@old.example"  # type: ignore[union-attr]
    assert crm.scalars(select(OutboundMail.to_address)).all() == ["dana@new.example"]
    assert crm.scalars(select(AuditLog.action).where(AuditLog.entity_id == dana.id)).all() == [
        "email_change_requested"
    ]


async def test_opt_out_and_in_take_effect_at_once(crm: Session, dana: Customer) -> None:
    out, _ = await run_action(ActionSetMarketingConsent(), make_tracker("telegram:55", intent="opt_out"))
    assert out[-1] == SlotSet("consent_result", "already_out")  # new customers never opted in
    inn, _ = await run_action(ActionSetMarketingConsent(), make_tracker("telegram:55", intent="opt_in"))
    assert inn[-1] == SlotSet("consent_result", "opted_in")
    out, _ = await run_action(ActionSetMarketingConsent(), make_tracker("telegram:55", intent="opt_out"))
    assert out[-1] == SlotSet("consent_result", "opted_out")
    consent = crm.scalars(select(Consent).where(Consent.purpose == ConsentPurpose.MARKETING)).one()
    assert (consent.granted, consent.source) == (False, "telegram:chat")


@pytest.mark.parametrize(
    ("raw", "score"), [("5", 5), ("five", 5), ("4/5", 4), ("3 stars", 3), ("10", None), ("0", None)]
)
def test_scores_are_read_on_a_1_to_5_scale(raw: str, score: int | None) -> None:
    assert parse_score(raw) == score


async def test_low_rating_opens_recovery_and_feedback_joins_it(crm: Session, dana: Customer) -> None:
    tracker = make_tracker(
        "web:dana", text="/rate", intent="rate", entities=[{"entity": "rating", "value": "1"}]
    )
    events, _ = await run_action(ActionRecordRating(), tracker)
    case = crm.scalars(select(Complaint)).one()
    assert events == [
        *context(dana, open_case=str(case.id)),
        SlotSet("rating", "1"),
        SlotSet("rating_band", "low"),
        SlotSet("recovery_case", str(case.id)),
    ]
    await run_action(ActionRecordFeedback(), make_tracker("web:dana", text="nobody answered my emails"))
    survey = crm.scalars(select(Survey)).one()
    assert (survey.score, survey.comment) == (1, "nobody answered my emails")


@pytest.mark.parametrize(
    ("status", "linked"), [(ComplaintStatus.CLOSED, True), (ComplaintStatus.OPEN, False)]
)
async def test_a_rating_after_a_revisit_belongs_to_the_case_put_right(
    crm: Session, dana: Customer, status: ComplaintStatus, linked: bool
) -> None:
    case = make_complaint(crm, dana, status=status)
    crm.commit()
    tracker = make_tracker(
        "web:dana",
        intent="rate",
        entities=[{"entity": "rating", "value": "5"}],
        slots={"complaint_id": str(case.id)},
    )
    await run_action(ActionRecordRating(), tracker)
    survey = crm.scalars(select(Survey)).one()
    assert survey.complaint_id == (case.id if linked else None)


async def test_clarify_offers_the_likely_intent_then_a_person() -> None:
    tracker = make_tracker(intent="nlu_fallback")
    tracker.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.5},
        {"name": "request_refund", "confidence": 0.4},
    ]
    tracker.events = [{"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}]
    events, _ = await run_action(ActionClarify(), tracker)
    assert events == [SlotSet("clarify_top", "request_refund")]
    tracker.events = tracker.events * 2
    events, _ = await run_action(ActionClarify(), tracker)
    assert events == [SlotSet("clarify_top", "handoff")]


async def test_an_irritable_customer_is_offered_a_person_at_the_first_miss() -> None:
    tracker = make_tracker(intent="nlu_fallback", slots={"temperament": "irritable"})
    tracker.latest_message["intent_ranking"] = [{"name": "request_refund", "confidence": 0.4}]
    tracker.events = [{"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}]
    events, _ = await run_action(ActionClarify(), tracker)
    assert events == [SlotSet("clarify_top", "handoff")]


async def test_a_second_answer_that_is_no_email_or_phone_ends_the_form_and_changes_nothing(
    crm: Session, dana: Customer
) -> None:
    # (A whole postal address is no miss: tests/actions/test_contact_address.py takes it as one.)
    validator, vague = ValidateContactForm(), "the one near the park, same as my sister's"
    first = validator.validate_contact_value(vague, CollectingDispatcher(), make_tracker(), {})
    assert first == {"contact_value": None, "contact_hint": "invalid"}  # asked again, with an example
    again = make_tracker(slots={"contact_hint": "invalid"})
    second = validator.validate_contact_value(vague, CollectingDispatcher(), again, {})
    assert second == {"contact_value": "-", "contact_hint": "gave_up"}  # the form is filled: it ends

    tracker = make_tracker("web:dana", slots={"contact_value": "-", "contact_hint": "gave_up"})
    events, _ = await run_action(ActionUpdateContactDetails(), tracker)
    assert events[-2:] == [SlotSet("contact_value", None), SlotSet("contact_kind", None)]
    crm.expire_all()
    assert crm.get(Customer, dana.id).email == "dana@old.example"  # type: ignore[union-attr]
    assert not crm.scalars(select(AuditLog.action).where(AuditLog.entity_id == dana.id)).all()
    assert not crm.scalars(select(OutboundMail.to_address)).all()
