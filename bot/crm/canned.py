"""Managing canned replies: add, edit, deactivate and reactivate (agents pick from the active ones,
`bot.crm.desk.canned_replies`). Every change lands in the audit log. The caller owns the session."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm.models import CannedReply
from bot.crm.queries import record_audit

MAX_TITLE = 80
MAX_TEXT = 1000


class CannedError(Exception):
    """The reply cannot be saved; the message says why, in words for the admin."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def all_canned_replies(*, session: Session) -> list[CannedReply]:
    """Every canned reply, active ones first, then by title."""
    return list(session.scalars(select(CannedReply).order_by(CannedReply.active.desc(), CannedReply.title)))


def add_canned_reply(*, session: Session, title: str, text: str, actor: str) -> CannedReply:
    title, text = _checked(session, title, text, reply_id=None)
    reply = CannedReply(active=True)
    _save(session, reply, title, text)
    record_audit(
        session=session,
        actor=actor,
        action="canned_reply_created",
        entity="canned_reply",
        entity_id=reply.id,
        details={"title": title},
    )
    return reply


def edit_canned_reply(*, session: Session, reply_id: int, title: str, text: str, actor: str) -> CannedReply:
    reply = _reply(session, reply_id)
    title, text = _checked(session, title, text, reply_id=reply_id)
    _save(session, reply, title, text)
    record_audit(
        session=session,
        actor=actor,
        action="canned_reply_edited",
        entity="canned_reply",
        entity_id=reply.id,
        details={"title": title},
    )
    return reply


def set_canned_reply_active(*, session: Session, reply_id: int, active: bool, actor: str) -> CannedReply:
    """Hide a reply from agents (kept, so it can come back) or show it again."""
    reply = _reply(session, reply_id)
    if reply.active is not active:
        reply.active = active
        record_audit(
            session=session,
            actor=actor,
            action="canned_reply_reactivated" if active else "canned_reply_deactivated",
            entity="canned_reply",
            entity_id=reply.id,
            details={"title": reply.title},
        )
    return reply


def _checked(session: Session, title: str, text: str, *, reply_id: int | None) -> tuple[str, str]:
    """Trimmed title and text, or CannedError naming the field at fault."""
    title, text = " ".join(title.split()), text.replace("\r\n", "\n").strip()
    if not title or len(title) > MAX_TITLE:
        raise CannedError(f"A title has 1 to {MAX_TITLE} characters", "title")
    if not text or len(text) > MAX_TEXT:
        raise CannedError(f"A reply has 1 to {MAX_TEXT:,} characters", "text")
    same = select(CannedReply.id).where(func.lower(CannedReply.title) == title.lower())
    if reply_id is not None:
        same = same.where(CannedReply.id != reply_id)
    if session.scalar(same) is not None:
        raise CannedError(f"There is already a canned reply called “{title}”", "title")
    return title, text


def _save(session: Session, reply: CannedReply, title: str, text: str) -> None:
    try:
        with session.begin_nested():  # a concurrent save of the same title loses here, not later
            reply.title, reply.text = title, text
            session.add(reply)
    except IntegrityError:
        raise CannedError(f"There is already a canned reply called “{title}”", "title") from None


def _reply(session: Session, reply_id: int) -> CannedReply:
    reply = session.get(CannedReply, reply_id)
    if reply is None:
        raise CannedError(f"There is no canned reply {reply_id}")
    return reply
