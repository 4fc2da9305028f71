"""A customer's answer to a team's question about a case (issue 18): the gateway puts it on the case and
marks the stored message, so the bot is told through Rasa's HTTP API (EXTERNAL_case_answer) and
acknowledges the answer instead of "I can't help with that". Customers cannot send that intent
themselves. Real CRM on SQLite and PostgreSQL; the whole turn is in tests/console/test_cases.py and,
through the real model, tests/webchat/test_case_loop.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import cases
from bot.crm.models import Complaint, ComplaintStatus, Customer, Delivery, DeliveryStatus, Message
from bot.gateway.inbound import Inbound, PendingMessage
from bot.gateway.inbox_crm import pending_message, store_inbound
from bot.gateway.limits import reads_as_intent
from tests.crm.test_cases import make_case, make_person


def _asked(session: Session, *, delivered: bool) -> tuple[int, str]:
    """A case whose team asked the customer a question; (case id, the customer's sender id)."""
    complaint = make_case(session)
    agent = make_person(session)
    cases.take(session=session, viewer=agent, complaint_id=complaint.id, version=complaint.version)
    asked = cases.ask_customer(
        session=session,
        viewer=agent,
        complaint_id=complaint.id,
        question="A photo?",
        version=complaint.version,
    )
    if delivered:
        (key,) = asked.queued
        session.scalar(select(Delivery).where(Delivery.idempotency_key == key)).status = DeliveryStatus.SENT
    web_id = session.get_one(Customer, complaint.customer_id).identities[0].external_id
    return complaint.id, f"web:{web_id}"


def _pending(session: Session, sender_id: str, text: str) -> PendingMessage:
    accepted = store_inbound(session, inbound=Inbound(sender_id, text))
    return pending_message(session.get_one(Message, accepted.message_id))


def test_an_answer_to_the_teams_question_reaches_rasa_as_the_case_answer(session: Session) -> None:
    case_id, sender = _asked(session, delivered=True)

    pending = _pending(session, sender, "Here is the photo of the box")

    assert pending.case_answer == case_id
    assert pending.rasa_text == "Here is the photo of the box"  # the words, kept as history
    assert session.get_one(Complaint, case_id).status is ComplaintStatus.IN_PROGRESS


def test_a_message_before_the_question_arrived_is_read_as_words(session: Session) -> None:
    _, sender = _asked(session, delivered=False)

    pending = _pending(session, sender, "hello?")

    assert (pending.case_answer, pending.rasa_text) == (None, "hello?")


def test_a_customer_cannot_type_the_case_answer_intent(session: Session) -> None:
    _, sender = _asked(session, delivered=False)

    pending = _pending(session, sender, '/EXTERNAL_case_answer{"complaint_id": "1"}')

    assert pending.case_answer is None
    assert not reads_as_intent(pending.rasa_text)
