"""Resolving a case tells the customer where they can be reached: in their chat, or, when no chat
channel is left and they confirmed an email address, by mail (once per resolution; SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import cases
from bot.crm.cases import Resolution
from bot.crm.complaints import file_complaint, reopen_complaint
from bot.crm.models import (
    Channel,
    ChannelIdentity,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Delivery,
    MailPurpose,
    OutboundMail,
    OutreachKind,
    Role,
)
from tests.crm.test_cases import make_person
from tests.factories import NOW, make_customer


def case_of(session: Session, customer: Customer) -> int:
    return file_complaint(
        session=session,
        customer=customer,
        category=ComplaintCategory.SERVICE,
        description="Nobody called me back",
        order=None,
        angry=False,
        now=NOW - timedelta(hours=2),
    ).complaint.id


def resolve(session: Session, case_id: int, text: str = "We called you back and fixed the plan.") -> str:
    viewer = make_person(session, Role.ADMIN, ())
    change = cases.resolve(
        session=session,
        viewer=viewer,
        complaint_id=case_id,
        resolution=Resolution(text, "none"),
        version=None,
        now=NOW,
    )
    [key] = change.queued
    return key


def mails(session: Session, customer: Customer) -> list[OutboundMail]:
    return list(session.scalars(select(OutboundMail).where(OutboundMail.customer_id == customer.id)))


def updates(session: Session, customer: Customer) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(
                Delivery.customer_id == customer.id, Delivery.kind == OutreachKind.CASE_UPDATE
            )
        )
    )


def test_a_customer_with_no_chat_left_gets_the_resolution_by_mail(session: Session) -> None:
    customer = make_customer(session, email="mia@example.com", email_verified_at=NOW - timedelta(days=1))
    gone = ChannelIdentity(channel=Channel.TELEGRAM, external_id="9001", reachable=False)  # blocked the bot
    customer.identities.append(gone)
    session.flush()
    case_id = case_of(session, customer)

    key = resolve(session, case_id)

    [mail] = mails(session, customer)
    assert key == mail.idempotency_key and key.startswith(f"case_resolved:{case_id}:resolved:")
    assert (mail.purpose, mail.to_address, mail.subject) == (
        MailPurpose.CASE_RESOLVED,
        "mia@example.com",
        f"Your case #{case_id} is resolved",
    )
    assert f"your case #{case_id} is resolved: We called you back and fixed the plan." in mail.body
    assert updates(session, customer) == []  # nothing queued for a chat nobody reads

    # the fix does not hold; the next resolution is mailed too, as a mail of its own
    complaint = cases.visible_case(
        session=session, viewer=make_person(session, Role.ADMIN, ()), complaint_id=case_id
    )
    reopen_complaint(session=session, complaint=complaint, customer=customer, now=NOW + timedelta(days=1))
    assert complaint.status is ComplaintStatus.REOPENED
    resolve(session, case_id, "We replaced the plan.")
    assert [m.body.split("\n")[2] for m in mails(session, customer)] == [
        f"your case #{case_id} is resolved: We called you back and fixed the plan.",
        f"your case #{case_id} is resolved: We replaced the plan.",
    ]


def test_a_customer_in_a_chat_is_told_there_not_by_mail(session: Session) -> None:
    customer = make_customer(
        session, web_id="resolved-in-chat", email="ben@example.com", email_verified_at=NOW - timedelta(days=1)
    )
    case_id = case_of(session, customer)
    key = resolve(session, case_id)
    assert [d.idempotency_key for d in updates(session, customer)] == [key]
    assert mails(session, customer) == []


def test_an_unconfirmed_address_gets_no_mail(session: Session) -> None:
    customer = make_customer(session, email="typo@example.com")  # never confirmed
    case_id = case_of(session, customer)
    key = resolve(session, case_id)
    assert mails(session, customer) == []
    assert [d.idempotency_key for d in updates(session, customer)] == [key]  # skipped by the gate, on record
