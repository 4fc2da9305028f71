"""The gateway's outbox: mails the actions queued (bot/crm/mail.py) go out through the email outlet,
once each, behind the policy gate.

A mail is claimed with one atomic UPDATE (queued → sending), so two gateways never both send it;
the gate (scheduler/policy.py `decide_mail`) is asked in that same transaction. A send that fails
for a reason that may pass (the server is down, a 4xx) goes back to `queued` with a growing wait,
up to MAX_ATTEMPTS; a refusal for good (5xx) is `failed` at once. A claim older than STALE_AFTER
belongs to a gateway that stopped mid-send and is taken over at the next start: the one window in
which a mail can go twice is a crash after the server accepted it and before `sent` was written,
and then it carries the same Message-ID. The mailbox transport closes even that window: it never
writes a mail's file twice."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.crm.db import rows_changed
from bot.crm.mail import fill_link
from bot.crm.models import DeliveryStatus, EmailVerification, MailPurpose, MailStatus, OutboundMail, utcnow
from bot.gateway.email_outlet import EmailOutlet, OutgoingMail
from bot.gateway.outlets import DeliveryResult
from bot.gateway.store import Crm
from scheduler.policy import Outcome, Policy, decide_mail

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
STALE_AFTER = timedelta(minutes=5)
POLL_SECONDS = 5.0


def due_mails(*, session: Session, now: datetime, limit: int) -> list[int]:
    """Mails that should go now: queued and due, or claimed by a gateway that stopped."""
    return list(
        session.scalars(
            select(OutboundMail.id)
            .where(
                or_(
                    (OutboundMail.status == MailStatus.QUEUED) & (OutboundMail.send_after <= now),
                    (OutboundMail.status == MailStatus.SENDING)
                    & (OutboundMail.send_after <= now - STALE_AFTER),
                )
            )
            .order_by(OutboundMail.send_after, OutboundMail.id)
            .limit(limit)
        )
    )


def claim(*, session: Session, mail_id: int, now: datetime) -> bool:
    """Take the mail for this gateway; False if another has it or it is done."""
    result = session.execute(
        update(OutboundMail)
        .where(OutboundMail.id == mail_id)
        .where(
            or_(
                (OutboundMail.status == MailStatus.QUEUED) & (OutboundMail.send_after <= now),
                (OutboundMail.status == MailStatus.SENDING) & (OutboundMail.send_after <= now - STALE_AFTER),
            )
        )
        .values(status=MailStatus.SENDING, send_after=now, attempts=OutboundMail.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result) == 1


def claim_and_decide(
    *, session: Session, mail_id: int, now: datetime, policy: Policy, secret_key: str, public_url: str
) -> OutgoingMail | str:
    """The mail ready to send, or what happened instead (taken, skipped, delayed)."""
    if not claim(session=session, mail_id=mail_id, now=now):
        return "taken"
    mail = session.get_one(OutboundMail, mail_id)
    session.refresh(mail)
    verdict = decide_mail(session=session, mail=mail, now=now, policy=policy)
    if verdict.outcome is Outcome.SKIP:
        mail.status, mail.skip_reason = MailStatus.SKIPPED, verdict.reason
        log.info("mail %s skipped: %s", mail.id, verdict.reason)
        return "skipped"
    if verdict.outcome is Outcome.DELAY:
        assert verdict.until is not None
        mail.status, mail.send_after, mail.skip_reason = MailStatus.QUEUED, verdict.until, verdict.reason
        mail.attempts -= 1  # waiting is not an attempt
        return "delayed"
    body = mail.body
    if mail.purpose is MailPurpose.VERIFY_ADDRESS and mail.verification_id is not None:
        verification = session.get_one(EmailVerification, mail.verification_id)
        body = fill_link(body, secret_key=secret_key, public_url=public_url, nonce=verification.nonce)
    return OutgoingMail(mail.id, mail.idempotency_key, mail.to_address, mail.subject, body, mail.created_at)


def record(*, session: Session, mail_id: int, result: DeliveryResult, transport: str, now: datetime) -> str:
    """Write what the outlet did: sent, retry later, or failed for good."""
    mail = session.get_one(OutboundMail, mail_id)
    mail.transport = transport
    if result.status is DeliveryStatus.SENT:
        mail.status, mail.sent_at, mail.message_id = MailStatus.SENT, now, result.external_id
        mail.error, mail.skip_reason = None, None
        log.info("mail %s sent via %s", mail.id, transport)
        return "sent"
    mail.error = (result.error or "")[:300] or None
    if result.unreachable or mail.attempts >= MAX_ATTEMPTS:
        mail.status = MailStatus.FAILED
        log.warning("mail %s failed after %s attempt(s)", mail.id, mail.attempts)
        return "failed"
    mail.status = MailStatus.QUEUED
    mail.send_after = now + timedelta(minutes=2 ** (mail.attempts - 1))  # 1, 2, 4, … minutes
    return "retry"


class Mailer:
    """Send what the outbox holds, every few seconds, for as long as the gateway runs."""

    def __init__(
        self,
        *,
        crm: Crm,
        outlet: EmailOutlet,
        transport_name: str,
        policy: Policy,
        secret_key: str,
        public_url: str,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.crm, self.outlet, self.transport_name, self.policy = crm, outlet, transport_name, policy
        self.secret_key, self.public_url = secret_key, public_url
        self.clock, self.poll_seconds = clock, poll_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_due()
            except SQLAlchemyError as error:  # the rows wait in the CRM for the next round
                log.warning("outbox: CRM unavailable (%s)", type(error).__name__)
            except Exception:  # the loop must outlive any one failure; it is logged, not hidden
                log.exception("outbox round failed")
            await asyncio.sleep(self.poll_seconds)

    async def run_due(self, limit: int = 50) -> Counter[str]:
        """Send (or skip, or delay) every mail due now; return what happened."""
        ids = await self.crm.run(partial(due_mails, now=self.clock(), limit=limit))
        outcomes: Counter[str] = Counter()
        for mail_id in ids:
            outcomes[await self.process(mail_id)] += 1
        return outcomes

    async def process(self, mail_id: int) -> str:
        ready = await self.crm.run(
            partial(
                claim_and_decide,
                mail_id=mail_id,
                now=self.clock(),
                policy=self.policy,
                secret_key=self.secret_key,
                public_url=self.public_url,
            )
        )
        if isinstance(ready, str):
            return ready
        try:
            result = await self.outlet.deliver(ready)
        except Exception as error:  # a mail the outlet cannot even build is a failed try, not a stuck claim
            log.exception("mail %s could not be delivered", mail_id)
            result = DeliveryResult(DeliveryStatus.FAILED, error=type(error).__name__)
        return await self.crm.run(
            partial(record, mail_id=mail_id, result=result, transport=self.transport_name, now=self.clock())
        )
