"""What the bot says about mail is what happens: a refund's confirmation with the return
instructions, a cancellation's confirmation and a phone change's note go to the confirmed address,
and a customer without one is told so instead of being promised a mail. Each answer is picked from
domain.yml the way Rasa picks it (the first variation whose conditions hold)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk.events import SlotSet
from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.contact import ActionUpdateContactDetails
from bot.actions.orders import ActionRequestRefund
from bot.actions.retention import ActionAcceptRetention, ActionDeclineRetention, ActionOfferRetention
from bot.crm import mail, retention
from bot.crm.catalogue import seed_catalogue
from bot.crm.models import (
    Customer,
    Handoff,
    MailPurpose,
    OutboundMail,
    Product,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from bot.settings import RETURNS_ADDRESS
from tests.actions.conftest import make_tracker, run_action
from tests.factories import make_customer, make_order

DOMAIN = Path(__file__).resolve().parents[2] / "domain.yml"


def answer(response: str, events: list[dict[str, Any]]) -> str:
    """The text Rasa would say for `response` after these events (slots not set count as None)."""
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    for variation in YAML(typ="safe").load(DOMAIN.read_text())["responses"][response]:
        conditions = variation.get("condition") or []
        if all(slots.get(c["name"]) == c["value"] for c in conditions):
            return str(variation["text"]).format(**{k: v for k, v in slots.items() if v is not None})
    raise AssertionError(f"no variation of {response} fits {slots}")


def customer(crm: Session, *, email: str | None, confirmed: bool) -> Customer:
    person = make_customer(
        crm,
        first_name="Ines",
        web_id="ines",
        email=email,
        email_verified_at=utcnow() - timedelta(days=10) if confirmed else None,
    )
    crm.commit()
    return person


def refund_tracker(number: str) -> Any:
    return make_tracker(
        "web:ines",
        text=f"refund {number}",
        intent="request_refund",
        entities=[{"entity": "order_id", "value": number}],
    )


def queued(crm: Session) -> list[tuple[MailPurpose, str]]:
    crm.expire_all()
    return [(m.purpose, m.to_address) for m in crm.scalars(select(OutboundMail).order_by(OutboundMail.id))]


async def test_an_approved_refund_mails_the_return_instructions_to_the_confirmed_address(
    crm: Session,
) -> None:
    ines = customer(crm, email="ines@example.com", confirmed=True)
    make_order(crm, ines, number="CL-500100", total="30.00", delivered_at=utcnow() - timedelta(days=2))
    crm.commit()
    events, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500100"))
    assert SlotSet("refund_outcome", "eligible") in events and SlotSet("email_state", "sent") in events
    assert queued(crm) == [(MailPurpose.REFUND_CONFIRMATION, "ines@example.com")]
    body = crm.scalars(select(OutboundMail.body)).one()
    assert "CL-500100" in body and RETURNS_ADDRESS in body and "EUR 30.00" in body
    assert "I've emailed you the confirmation with the return instructions" in answer(
        "utter_refund_outcome", events
    )


async def test_without_an_email_address_no_mail_is_promised_and_none_is_queued(crm: Session) -> None:
    ines = customer(crm, email=None, confirmed=False)
    make_order(crm, ines, number="CL-500101", total="30.00", delivered_at=utcnow() - timedelta(days=2))
    crm.commit()
    events, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500101"))
    assert SlotSet("email_state", "none") in events
    assert queued(crm) == []
    said = answer("utter_refund_outcome", events)
    assert "is approved" in said and "I have no confirmed email address for you" in said
    assert "emailing" not in said and "I've emailed" not in said


async def test_an_address_waiting_for_its_link_gets_nothing_until_confirmed_then_asking_again_sends_it(
    crm: Session,
) -> None:
    ines = customer(crm, email=None, confirmed=False)
    make_order(crm, ines, number="CL-500102", total="30.00", delivered_at=utcnow() - timedelta(days=2))
    crm.commit()
    await run_action(
        ActionUpdateContactDetails(), make_tracker("web:ines", slots={"contact_value": "ines@new.example"})
    )
    events, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500102"))
    assert SlotSet("email_state", "unverified") in events
    assert queued(crm) == [(MailPurpose.VERIFY_ADDRESS, "ines@new.example")]
    assert "open the link we sent to it" in answer("utter_refund_outcome", events)

    verification = crm.scalars(select(mail.EmailVerification)).one()
    token = mail.token_for("test-secret", verification.nonce)  # the action server's SECRET_KEY in tests
    assert mail.confirm_address(session=crm, token=token) is mail.Confirmation.CONFIRMED
    crm.commit()
    again, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500102"))
    assert SlotSet("refund_outcome", "already") in again and SlotSet("email_state", "sent") in again
    assert "I've now emailed you its confirmation" in answer("utter_refund_outcome", again)
    third, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500102"))
    assert SlotSet("email_state", None) in third  # sent once: nothing new to say or send
    assert [p for p, _ in queued(crm)].count(MailPurpose.REFUND_CONFIRMATION) == 1


async def test_a_refund_for_review_is_put_in_the_agents_queue_with_a_time(crm: Session) -> None:
    ines = customer(crm, email=None, confirmed=False)
    make_order(crm, ines, number="CL-500103", total="240.00", delivered_at=utcnow() - timedelta(days=2))
    crm.commit()
    events, _ = await run_action(ActionRequestRefund(), refund_tracker("CL-500103"))
    handoff = crm.scalars(select(Handoff)).one()
    assert (handoff.reason, handoff.mode, handoff.callback_by is not None) == (
        "refund_review",
        "callback",
        True,
    )
    when = next(e["value"] for e in events if e.get("name") == "callback_when")
    assert f"they'll get back to you {when}" in answer("utter_refund_outcome", events)


async def test_an_email_given_in_chat_is_only_asked_to_be_confirmed(crm: Session) -> None:
    ines = customer(crm, email="ines@example.com", confirmed=True)
    events, _ = await run_action(
        ActionUpdateContactDetails(), make_tracker("web:ines", slots={"contact_value": "ines@new.example"})
    )
    crm.expire_all()
    assert crm.get_one(Customer, ines.id).email == "ines@example.com"
    assert queued(crm) == [(MailPurpose.VERIFY_ADDRESS, "ines@new.example")]
    said = answer("utter_contact_updated", events)
    assert "sent a link to ines@new.example" in said and "stays as it was (ines@example.com)" in said


@pytest.mark.parametrize(
    ("email", "confirmed", "mailed"), [("ines@example.com", True, True), (None, False, False)]
)
async def test_a_phone_change_is_noted_by_mail_only_to_a_confirmed_address(
    crm: Session, email: str | None, confirmed: bool, mailed: bool
) -> None:
    customer(crm, email=email, confirmed=confirmed)
    events, _ = await run_action(
        ActionUpdateContactDetails(), make_tracker("web:ines", slots={"contact_value": "+44 7700 900123"})
    )
    assert queued(crm) == ([(MailPurpose.PHONE_CHANGED, "ines@example.com")] if mailed else [])
    said = answer("utter_contact_updated", events)
    assert said.startswith("Done! Your phone number is now +447700900123")
    assert ("sent a note about the change to your email" in said) is mailed


@pytest.mark.parametrize(
    ("email", "confirmed", "mailed"), [("ines@example.com", True, True), (None, False, False)]
)
async def test_a_cancellation_is_confirmed_by_mail_only_when_it_can_be(
    crm: Session, email: str | None, confirmed: bool, mailed: bool
) -> None:
    seed_catalogue(session=crm, launched_at=utcnow() - timedelta(days=900))
    ines = customer(crm, email=email, confirmed=confirmed)
    plan = crm.scalars(select(Product).where(Product.sku == "PLAN-PLUS")).one()
    started = utcnow() - timedelta(days=40)
    crm.add(
        Subscription(
            customer_id=ines.id,
            product_id=plan.id,
            status=SubscriptionStatus.ACTIVE,
            monthly_price=plan.price,
            started_at=started,
        )
    )
    crm.commit()
    reason = [{"entity": "leave_reason", "value": "moving"}]
    await run_action(ActionOfferRetention(), make_tracker("web:ines", intent="give_reason", entities=reason))
    final: list[dict[str, Any]] = []
    for _ in range(3):  # declining every offer ends the save attempt
        final, _ = await run_action(ActionDeclineRetention(), make_tracker("web:ines", intent="deny"))
        if SlotSet("retention_state", "exhausted") in final:
            break
    assert queued(crm) == ([(MailPurpose.CANCELLATION_CONFIRMATION, "ines@example.com")] if mailed else [])
    if mailed:  # the mail names the day it takes effect: the second monthly anniversary of the start
        ends = retention.billing_month_end(started, utcnow())
        assert ends.strftime("%A %-d %B %Y") in crm.scalars(select(OutboundMail)).one().body
    said = answer("utter_cancellation_recorded", final)
    assert ("I've sent you a confirmation by email" in said) is mailed
    assert ("this chat is your record of it" in said) is not mailed


async def test_a_promised_personal_follow_up_is_a_callback_case_with_the_time_said(crm: Session) -> None:
    seed_catalogue(session=crm, launched_at=utcnow() - timedelta(days=900))
    ines = customer(crm, email=None, confirmed=False)
    plan = crm.scalars(select(Product).where(Product.sku == "PLAN-PLUS")).one()
    crm.add(
        Subscription(
            customer_id=ines.id,
            product_id=plan.id,
            status=SubscriptionStatus.ACTIVE,
            monthly_price=plan.price,
            started_at=utcnow() - timedelta(days=40),
        )
    )
    crm.commit()
    reason = [{"entity": "leave_reason", "value": "service"}]  # the offer: fix it first, a person calls
    await run_action(ActionOfferRetention(), make_tracker("web:ines", intent="give_reason", entities=reason))
    events, _ = await run_action(ActionAcceptRetention(), make_tracker("web:ines", intent="affirm"))
    handoff = crm.scalars(select(Handoff)).one()
    assert (handoff.reason, handoff.mode, handoff.callback_by is not None) == ("retention", "callback", True)
    when = next(e["value"] for e in events if e.get("name") == "callback_when")
    said = answer("utter_retention_accepted", events)
    assert said.endswith(f"they'll contact you {when}.") and "within a day" not in said


async def test_the_chat_cannot_be_used_to_mail_strangers_again_and_again(crm: Session) -> None:
    ines = customer(crm, email="ines@example.com", confirmed=True)
    answers = []
    for n in range(mail.LINKS_PER_DAY + 1):
        tracker = make_tracker("web:ines", slots={"contact_value": f"someone{n}@example.com"})
        events, _ = await run_action(ActionUpdateContactDetails(), tracker)
        answers.append(answer("utter_contact_updated", events))
    assert [p for p, _ in queued(crm)] == [MailPurpose.VERIFY_ADDRESS] * mail.LINKS_PER_DAY
    assert all(a.startswith("Thanks! I've sent a link") for a in answers[:-1])
    assert "I won't send another one now" in answers[-1] and "ines@example.com" in answers[-1]
    crm.expire_all()
    assert crm.get_one(Customer, ines.id).email == "ines@example.com"
