"""Email, the gateway's third outlet beside the web chat and Telegram: a mail from the outbox goes
out through SMTP (aiosmtplib) or, with no SMTP_HOST set, into the local mailbox folder var/mail/.

Like the other outlets it answers with a DeliveryResult: SENT, or FAILED with `unreachable` when
the server refused for good (a 5xx: retrying cannot help) and without it when trying again later
may (a connection error, a timeout, a 4xx)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol

import aiosmtplib

from bot.crm.models import OutboundStatus
from bot.gateway.outlets import DeliveryResult

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class OutgoingMail:
    """An outbox row, claimed and rendered, ready for the outlet."""

    id: int
    key: str
    to: str
    subject: str
    body: str
    created_at: datetime


class MailRefused(Exception):
    """The server said no for good (5xx): this mail cannot be delivered as it is."""


class MailTransport(Protocol):
    name: str

    async def send(self, message: EmailMessage, mail: OutgoingMail) -> None:
        """Hand the message over; raise MailRefused, or OSError / aiosmtplib errors to retry."""
        ...


class SmtpTransport:
    """An SMTP server (SMTP_HOST and friends): a connection per mail, which is plenty for
    confirmations and receipts and never leaves a half-open session behind."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        security: str = "starttls",
        timeout: float = SMTP_TIMEOUT,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.security = username, password, security

    async def send(self, message: EmailMessage, mail: OutgoingMail) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.security == "ssl",
                start_tls=True if self.security == "starttls" else False,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            if all(e.code >= 500 for e in error.recipients):
                raise MailRefused(f"recipient refused ({error.recipients[0].code})") from None
            raise
        except aiosmtplib.SMTPResponseException as error:
            if error.code >= 500 and not isinstance(error, aiosmtplib.SMTPAuthenticationError):
                raise MailRefused(f"refused ({error.code})") from None
            raise


class MailboxTransport:
    """The local mailbox folder: one .eml file per mail, named by the mail's id, so writing the
    same mail again (a retry after a crash) finds it there and writes nothing."""

    name = "mailbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, mail: OutgoingMail) -> Path:
        return self.folder / f"{mail.created_at:%Y%m%d-%H%M%S}-mail-{mail.id}.eml"

    async def send(self, message: EmailMessage, mail: OutgoingMail) -> None:
        await asyncio.to_thread(self._write, message.as_bytes(), self.path_of(mail))

    @staticmethod
    def _write(data: bytes, path: Path) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_bytes(data)
        os.replace(partial, path)  # a reader never sees half a mail


def message_id(key: str, sender: str) -> str:
    """The same Message-ID for every attempt of one mail, so mail clients can spot a repeat."""
    domain = parseaddr(sender)[1].partition("@")[2] or "careloop.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def compose(mail: OutgoingMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = message_id(mail.key, sender)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    return message


class EmailOutlet:
    """Deliver a mail through the configured transport."""

    def __init__(self, transport: MailTransport, sender: str) -> None:
        self.transport, self.sender = transport, sender

    async def deliver(self, mail: OutgoingMail) -> DeliveryResult:
        message = compose(mail, self.sender)
        try:
            await self.transport.send(message, mail)
        except MailRefused as error:
            log.warning("mail %s refused: %s", mail.id, error)
            return DeliveryResult(OutboundStatus.FAILED, error=str(error), unreachable=True)
        except (OSError, aiosmtplib.SMTPException) as error:
            log.warning("mail %s not sent, will retry: %s", mail.id, type(error).__name__)
            return DeliveryResult(OutboundStatus.FAILED, error=f"{type(error).__name__}: {error}"[:300])
        return DeliveryResult(OutboundStatus.SENT, external_id=message["Message-ID"])
