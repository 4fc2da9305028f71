"""Email through a real local SMTP server: each mail the bot promises arrives once, retries never
send twice, an unconfirmed address gets nothing but the confirmation (which names no one), the
confirmation link works once and only in time, and without SMTP the mails land in var/mail/."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.crm import mail
from bot.crm.db import session_scope
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Customer,
    EmailVerification,
    MailPurpose,
    MailStatus,
    Order,
    OrderStatus,
    OutboundMail,
    Refund,
    RefundStatus,
)
from bot.gateway.email_outlet import EmailOutlet, MailboxTransport, MailTransport, SmtpTransport
from bot.gateway.mailer import STALE_AFTER, Mailer
from bot.gateway.store import Crm
from bot.gateway.verify_email import EmailVerificationPages
from scheduler.policy import Policy
from tests.gateway.smtp_server import SmtpServer, smtp_server

SECRET = "test-secret-for-mail-links"
PUBLIC = "https://shop.example"
RETURNS = "CareLoop Returns, Teststrasse 9, 10115 Berlin"
NOON = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_scratch"))
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    return url


@pytest.fixture
def crm(crm_url: str) -> Iterator[Crm]:
    crm = Crm(crm_url)
    crm.start()
    yield crm
    crm.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def mailer(crm: Crm, transport: MailTransport, clock: Clock) -> Mailer:
    return Mailer(
        crm=crm,
        outlet=EmailOutlet(transport, "CareLoop <care@shop.example>"),
        transport_name=transport.name,
        policy=Policy.parse("21:00-09:00", 3),
        secret_key=SECRET,
        public_url=PUBLIC,
        clock=clock,
    )


def smtp_mailer(crm: Crm, smtp: SmtpServer, clock: Clock) -> Mailer:
    return mailer(crm, SmtpTransport(smtp.host, smtp.port, security="none", timeout=5), clock)


def add_customer(url: str, *, email: str | None, confirmed: bool = True, tz: str = "Europe/Berlin") -> int:
    with session_scope(url) as session:
        customer = Customer(
            first_name="Zelda",
            last_name="Quist",
            email=email,
            email_verified_at=NOON - timedelta(days=30) if confirmed and email else None,
            timezone=tz,
            created_at=NOON - timedelta(days=400),
        )
        session.add(customer)
        session.flush()
        return customer.id


def approved_refund(url: str, customer_id: int, number: str = "CL-424242") -> mail.MailState:
    with session_scope(url) as session:
        customer = session.get_one(Customer, customer_id)
        order = Order(
            number=number,
            customer_id=customer_id,
            status=OrderStatus.DELIVERED,
            total=Decimal("24.00"),
            placed_at=NOON - timedelta(days=5),
            delivered_at=NOON - timedelta(days=2),
        )
        session.add(order)
        session.flush()
        refund = Refund(
            order_id=order.id,
            customer_id=customer_id,
            amount=order.total,
            status=RefundStatus.APPROVED,
            requested_at=NOON,
        )
        session.add(refund)
        session.flush()
        return mail.queue_refund_confirmation(
            session=session, customer=customer, refund=refund, order=order, returns_address=RETURNS
        )


def mails(url: str) -> list[OutboundMail]:
    with session_scope(url) as session:
        return list(session.scalars(select(OutboundMail).order_by(OutboundMail.id)))


def body_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def test_the_refund_confirmation_arrives_once_though_the_first_try_fails(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com")
    assert approved_refund(crm_url, customer_id) is mail.MailState.SENT
    clock = Clock()
    outbox = smtp_mailer(crm, smtp, clock)

    smtp.mailbox.refuse_next = 1  # the server is busy: 451
    assert await outbox.run_due() == {"retry": 1}
    (row,) = mails(crm_url)
    assert (row.status, row.attempts, smtp.mailbox.received) == (MailStatus.QUEUED, 1, [])
    assert await outbox.run_due() == {}  # not before its wait is over

    clock.now += timedelta(minutes=1)
    assert await outbox.run_due() == {"sent": 1}
    clock.now += timedelta(hours=1)
    assert await outbox.run_due() == {}
    assert approved_refund(crm_url, customer_id, "CL-424243") is mail.MailState.SENT  # another refund
    assert await outbox.run_due() == {"sent": 1}

    first = smtp.mailbox.received[0]
    assert smtp.mailbox.attempts == 3 and len(smtp.mailbox.received) == 2
    assert first["To"] == "zelda@example.com"
    assert first["Subject"].startswith("Your refund #") and "CL-424242" in first["Subject"]
    text = body_of(first)
    assert "EUR 24.00" in text and RETURNS in text and "on the parcel" in text
    (row, _) = mails(crm_url)
    assert (row.status, row.transport, row.message_id) == (MailStatus.SENT, "smtp", first["Message-ID"])


async def test_a_mail_queued_twice_is_one_mail(crm_url: str, crm: Crm, smtp: SmtpServer) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com")
    with session_scope(crm_url) as session:
        customer = session.get_one(Customer, customer_id)
        for _ in range(2):
            mail.queue_cancellation_confirmation(session=session, customer=customer, plan="Plus", now=NOON)
    assert await smtp_mailer(crm, smtp, Clock()).run_due() == {"sent": 1}
    assert [m["Subject"] for m in smtp.mailbox.received] == ["Your cancellation request"]
    assert "Plus membership" in body_of(smtp.mailbox.received[0])


async def test_a_claim_left_by_a_stopped_gateway_is_sent_once_after_the_restart(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com")
    approved_refund(crm_url, customer_id)
    with session_scope(crm_url) as session:  # a gateway claimed it and stopped before sending
        row = session.scalars(select(OutboundMail)).one()
        row.status, row.attempts, row.send_after = MailStatus.SENDING, 1, NOON
    clock = Clock(NOON + timedelta(minutes=1))
    outbox = smtp_mailer(crm, smtp, clock)
    assert await outbox.run_due() == {}  # it may still be sending: leave it alone for a while
    clock.now = NOON + STALE_AFTER + timedelta(seconds=1)
    assert await outbox.run_due() == {"sent": 1}
    assert await outbox.run_due() == {}
    assert len(smtp.mailbox.received) == 1


async def test_a_refusal_for_good_is_not_retried(crm_url: str, crm: Crm, smtp: SmtpServer) -> None:
    customer_id = add_customer(crm_url, email="gone@example.com")
    approved_refund(crm_url, customer_id)
    smtp.mailbox.refused_recipients.add("gone@example.com")
    clock = Clock()
    outbox = smtp_mailer(crm, smtp, clock)
    assert await outbox.run_due() == {"failed": 1}
    clock.now += timedelta(days=1)
    assert await outbox.run_due() == {}
    (row,) = mails(crm_url)
    assert (row.status, row.attempts) == (MailStatus.FAILED, 1)
    assert row.error is not None and "550" in row.error


async def test_an_unconfirmed_address_gets_no_mail_but_the_confirmation(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    customer_id = add_customer(crm_url, email="typed@example.com", confirmed=False)
    assert approved_refund(crm_url, customer_id) is mail.MailState.NONE  # nothing queued, and said so
    with session_scope(crm_url) as session:  # even a mail queued by mistake is stopped at the gate
        customer = session.get_one(Customer, customer_id)
        mail.queue_mail(
            session=session,
            customer=customer,
            purpose=MailPurpose.CANCELLATION_CONFIRMATION,
            key="by-mistake",
            subject="Your cancellation request",
            body="…",
            to="typed@example.com",
        )
    assert await smtp_mailer(crm, smtp, Clock()).run_due() == {"skipped": 1}
    assert smtp.mailbox.received == []
    assert [(m.status, m.skip_reason) for m in mails(crm_url)] == [(MailStatus.SKIPPED, "unverified_address")]


def verification_pages(crm: Crm) -> TestClient:
    pages = EmailVerificationPages(crm)
    app = Starlette(
        routes=[
            Route("/verify-email", pages.show, methods=["GET"]),
            Route("/verify-email", pages.confirm, methods=["POST"]),
        ]
    )
    return TestClient(app)


def ask_to_confirm(url: str, customer_id: int, address: str, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    with session_scope(url) as session:
        customer = session.get_one(Customer, customer_id)
        mail.start_verification(
            session=session, customer=customer, address=address, secret_key=SECRET, now=now
        )


def link_in(message: email.message.EmailMessage) -> str:
    found = re.search(r"https://shop\.example/verify-email\?token=([0-9a-f]+)", body_of(message))
    assert found is not None, body_of(message)
    return found.group(1)


async def test_the_confirmation_names_no_one_and_its_link_works_once(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    customer_id = add_customer(crm_url, email="old@example.com")
    approved_refund(crm_url, customer_id)  # an order, a refund and a mail to the confirmed address
    ask_to_confirm(crm_url, customer_id, "new@example.com")
    clock = Clock()
    outbox = smtp_mailer(crm, smtp, clock)
    assert await outbox.run_due() == {"sent": 2}

    (confirmation,) = smtp.mailbox.to("new@example.com")
    text = body_of(confirmation)
    for personal in ("Zelda", "Quist", "CL-424242", "24.00", "old@example.com", "refund"):
        assert personal not in text and personal not in str(confirmation["Subject"])
    token = link_in(confirmation)
    stored = [m.body for m in mails(crm_url)]
    assert all(token not in body for body in stored)  # the database never holds the link

    with verification_pages(crm) as browser:
        shown = browser.get(f"/verify-email?token={token}")
        assert shown.status_code == 200 and "n•••@example.com" in shown.text
        assert shown.headers["referrer-policy"] == "no-referrer"
        with session_scope(crm_url) as session:  # showing the page confirms nothing (link scanners)
            assert session.get_one(Customer, customer_id).email == "old@example.com"
        done = browser.post("/verify-email", data={"token": token})
        assert done.status_code == 200 and "is confirmed" in done.text
        again = browser.post("/verify-email", data={"token": token})
        assert again.status_code == 410 and "already been used" in again.text

    with session_scope(crm_url) as session:
        customer = session.get_one(Customer, customer_id)
        assert customer.email == "new@example.com" and customer.email_verified_at is not None
    clock.now = datetime.now(timezone.utc)
    assert await outbox.run_due() == {"sent": 2}
    assert [m["Subject"] for m in smtp.mailbox.to("new@example.com")][-1] == "Your email address is confirmed"
    (replaced,) = [m for m in smtp.mailbox.to("old@example.com") if "changed" in m["Subject"]]
    assert "n•••@example.com" in body_of(replaced) and "new@example.com" not in body_of(replaced)


async def test_expired_replaced_and_wrong_links_confirm_nothing(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    now = datetime.now(timezone.utc)
    late = add_customer(crm_url, email=None)
    ask_to_confirm(crm_url, late, "late@example.com", now=now - timedelta(hours=25))
    changed_mind = add_customer(crm_url, email=None)
    ask_to_confirm(crm_url, changed_mind, "first@example.com", now=now)
    ask_to_confirm(crm_url, changed_mind, "second@example.com", now=now)
    # Only the last request is still worth a mail: the first expired, the next was replaced.
    assert await smtp_mailer(crm, smtp, Clock(now)).run_due() == {"skipped": 2, "sent": 1}
    assert [m["To"] for m in smtp.mailbox.received] == ["second@example.com"]
    with session_scope(crm_url) as session:
        rows = {v.address: v for v in session.scalars(select(EmailVerification))}
        tokens = {address: mail.token_for(SECRET, v.nonce) for address, v in rows.items()}
    with verification_pages(crm) as browser:
        expired = browser.post("/verify-email", data={"token": tokens["late@example.com"]})
        assert expired.status_code == 410 and "expired" in expired.text
        replaced = browser.get(f"/verify-email?token={tokens['first@example.com']}")
        assert replaced.status_code == 410 and "already been used" in replaced.text
        wrong = browser.post("/verify-email", data={"token": "0" * 64})
        assert wrong.status_code == 404 and "isn&#x27;t valid" in wrong.text
        assert browser.get("/verify-email").status_code == 404
        assert browser.get(f"/verify-email?token={tokens['second@example.com']}").status_code == 200
    with session_scope(crm_url) as session:
        assert session.get_one(Customer, late).email is None
        assert session.get_one(Customer, changed_mind).email is None


async def test_without_smtp_each_mail_is_written_to_the_mailbox_folder_once(
    crm_url: str, crm: Crm, tmp_path: Path
) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com")
    approved_refund(crm_url, customer_id)
    folder = tmp_path / "mail"
    clock = Clock()
    outbox = mailer(crm, MailboxTransport(folder), clock)
    assert await outbox.run_due() == {"sent": 1}
    with session_scope(crm_url) as session:  # as if the gateway stopped after writing, before recording
        row = session.scalars(select(OutboundMail)).one()
        row.status, row.send_after = MailStatus.SENDING, NOON
    clock.now += STALE_AFTER + timedelta(minutes=1)
    assert await outbox.run_due() == {"sent": 1}
    (written,) = folder.glob("*.eml")
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert message["To"] == "zelda@example.com" and RETURNS in body_of(message)
    assert mails(crm_url)[0].transport == "mailbox"


async def test_quiet_hours_hold_only_mails_whose_purpose_needs_them(
    crm_url: str, crm: Crm, smtp: SmtpServer
) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com", tz="Asia/Tokyo")  # 21:00 there at NOON
    approved_refund(crm_url, customer_id)
    with session_scope(crm_url) as session:
        customer = session.get_one(Customer, customer_id)
        mail.queue_case_resolved(
            session=session, customer=customer, case_id=7, resolution="We sent a new grinder."
        )
    with session_scope(crm_url) as session:  # queued at noon UTC: 21:00 in Tokyo
        for row in session.scalars(select(OutboundMail)):
            row.created_at = row.send_after = NOON
    clock = Clock(NOON)
    outbox = smtp_mailer(crm, smtp, clock)
    assert await outbox.run_due() == {"sent": 1, "delayed": 1}  # the receipt they asked for goes now
    held = [m for m in mails(crm_url) if m.purpose is MailPurpose.CASE_RESOLVED][0]
    assert (held.status, held.skip_reason, held.attempts) == (MailStatus.QUEUED, "quiet_hours", 0)
    assert held.send_after == datetime(2026, 6, 16, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo
    clock.now = held.send_after
    assert await outbox.run_due() == {"sent": 1}
    assert [m["Subject"] for m in smtp.mailbox.received][-1] == "Your case #7 is resolved"


class BrokenTransport:
    """A transport that fails in a way nobody foresaw (not a network or SMTP error)."""

    name = "smtp"

    async def send(self, message: email.message.EmailMessage, mail: object) -> None:
        raise ValueError("unexpected")


async def test_an_unforeseen_failure_is_a_failed_try_not_a_stuck_claim(crm_url: str, crm: Crm) -> None:
    customer_id = add_customer(crm_url, email="zelda@example.com")
    approved_refund(crm_url, customer_id)
    clock = Clock()
    outbox = mailer(crm, BrokenTransport(), clock)
    for attempt in range(1, 7):
        clock.now += timedelta(hours=1)
        assert await outbox.run_due() == {"retry" if attempt < 6 else "failed": 1}
    (row,) = mails(crm_url)
    assert (row.status, row.attempts, row.error) == (MailStatus.FAILED, 6, "ValueError")
