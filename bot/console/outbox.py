"""The Outbox page (admins): every mail the bot queued for customers, its state and its text, so
that without an SMTP server a newcomer sees what would have been sent (var/mail/ holds the files)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.crm.models import OutboundMail

if TYPE_CHECKING:
    from bot.console.app import Console

SHOWN = 100


@dataclass(frozen=True)
class MailRow:
    id: int
    customer_id: int
    purpose: str
    to: str
    subject: str
    body: str
    status: str
    why: str  # a skip reason or the last error
    transport: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None


def newest_mails(*, session: Session, limit: int = SHOWN) -> list[MailRow]:
    """The newest mails first; a verification link is never among them (it is made when sending)."""
    mails = session.scalars(select(OutboundMail).order_by(OutboundMail.id.desc()).limit(limit))
    return [
        MailRow(
            id=m.id,
            customer_id=m.customer_id,
            purpose=m.purpose.value,
            to=m.to_address,
            subject=m.subject,
            body=m.body,
            status=m.status.value,
            why=m.skip_reason or m.error or "",
            transport=m.transport or "",
            attempts=m.attempts,
            created_at=m.created_at,
            sent_at=m.sent_at,
        )
        for m in mails
    ]


def routes(console: Console) -> list[BaseRoute]:
    async def outbox(request: Request) -> Response:
        user = await console.require(request, "outbox")
        mails = await console.crm.run(newest_mails)
        smtp = console.settings.smtp_host
        return console.page(
            request, "outbox/list.html", user, mails=mails, smtp=smtp, mail_dir=console.settings.mail_dir
        )

    return [Route("/outbox", outbox, methods=["GET"])]
