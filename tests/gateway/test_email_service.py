"""The running gateway sends the outbox by itself: into var/mail/ when no SMTP server is set (what
`make run` does on a fresh clone), through SMTP when one is; and its /verify-email page confirms an
address from the link in the mail."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.crm import mail
from bot.crm.models import Customer, MailStatus, OutboundMail, utcnow
from tests.gateway.fixtures import crm_template, rasa  # noqa: F401 - fixtures
from tests.gateway.harness import copy_crm, gateway_settings, running_gateway, wait_until
from tests.gateway.smtp_server import smtp_server
from tests.gateway.standin_rasa import StandInRasa


def add_customer(session: object, *, email_address: str | None) -> Customer:
    customer = Customer(
        first_name="Pia",
        email=email_address,
        email_verified_at=utcnow() - timedelta(days=3) if email_address else None,
    )
    session.add(customer)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    return customer


def test_without_smtp_the_gateway_writes_mails_to_var_mail_and_confirms_links(
    tmp_path: Path,
    crm_template: Path,  # noqa: F811
    rasa: StandInRasa,  # noqa: F811
) -> None:
    var = tmp_path / "var"
    copy_crm(crm_template, var)
    settings = gateway_settings(var, rasa.url)
    assert settings.smtp_host is None
    with running_gateway(settings) as gateway:
        with gateway.crm() as session:
            pia = add_customer(session, email_address=None)
            mail.start_verification(
                session=session, customer=pia, address="pia@example.com", secret_key=settings.secret_key
            )
            session.commit()
            pia_id = pia.id
        written = wait_until(lambda: list((var / "mail").glob("*.eml")), what="a mail in var/mail")
        message = email.message_from_bytes(written[0].read_bytes(), policy=email.policy.default)
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert message["To"] == "pia@example.com" and "Pia" not in body
        link = re.search(r"(http://\S+/verify-email\?token=\w+)", body)
        assert link is not None and link.group(1).startswith(settings.public_url)

        shown = httpx.get(link.group(1), timeout=10)
        assert shown.status_code == 200 and "Confirm my email address" in shown.text
        token = link.group(1).split("token=")[1]
        done = httpx.post(f"{gateway.url}/verify-email", data={"token": token}, timeout=10)
        assert done.status_code == 200 and "is confirmed" in done.text
        with gateway.crm() as session:
            assert session.get_one(Customer, pia_id).email == "pia@example.com"
        # …and the mail saying so is written too, by the same running outbox.
        wait_until(lambda: len(list((var / "mail").glob("*.eml"))) == 2, what="the second mail")

        def both_sent() -> bool:
            with gateway.crm() as session:
                return session.scalars(select(OutboundMail.status)).all() == [MailStatus.SENT] * 2

        wait_until(both_sent, what="both mails recorded as sent")


def test_with_smtp_the_gateway_sends_through_the_server(
    tmp_path: Path,
    crm_template: Path,  # noqa: F811
    rasa: StandInRasa,  # noqa: F811
) -> None:
    var = tmp_path / "var"
    copy_crm(crm_template, var)
    with smtp_server() as smtp:
        settings = gateway_settings(
            var, rasa.url, SMTP_HOST=smtp.host, SMTP_PORT=str(smtp.port), SMTP_SECURITY="none"
        )
        with running_gateway(settings) as gateway:
            with gateway.crm() as session:
                pia = add_customer(session, email_address="pia@example.com")
                mail.queue_cancellation_confirmation(
                    session=session, customer=pia, plan="Basic", now=utcnow()
                )
                session.commit()
            wait_until(lambda: smtp.mailbox.received, what="the mail at the SMTP server")
        assert [m["Subject"] for m in smtp.mailbox.received] == ["Your cancellation request"]
        assert not (var / "mail").exists()
